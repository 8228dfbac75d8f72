"""The quickstart's table: no column always equal to another or empty."""

from launch import quickstart
from tests.test_case import TestCase


def _report(top1, balanced, many, medium, few, tau=None):
    report = dict(
        top1=top1, balanced_accuracy=balanced, many=many, medium=medium, few=few
    )
    if tau is not None:
        report["tau"] = tau
    return report


def _results(balanced_equals_top1):
    def pair(top1, many, medium):
        # float32 per-class means differ from top-1 in the last bits.
        balanced = top1 + 3e-8 if balanced_equals_top1 else top1 - 0.01
        return _report(top1, balanced, many, medium, None)

    return {
        "loss": {
            "test": {"raw": pair(0.5, 0.7, 0.4)},
            "export_dir": "q/loss/export",
            "seconds": 10.0,
            "dataset": "cifar10_lt",
        },
        "baseline": {
            "test": {
                "raw": pair(0.4, 0.8, 0.2),
                "adjusted": dict(pair(0.45, 0.7, 0.3), tau=1.0),
            },
            "export_dir": "q/baseline/export",
            "seconds": 12.0,
        },
    }


class FormatTableTest(TestCase):
    def test_redundant_and_empty_columns_are_explained(self):
        text = quickstart.format_table(_results(balanced_equals_top1=True))
        header = text.splitlines()[0]
        self.assertIn("top-1", header)
        self.assertNotIn("balanced", header)
        self.assertNotIn("few", header)
        self.assertIn("many", header)
        self.assertIn("balanced: equal to top-1", text)
        self.assertIn("few: no class of the training set is few-shot", text)
        self.assertRegex(
            text, r"loss \(logit-adjusted loss\)\s+0\.5000\s+0\.7000"
        )

    def test_balanced_column_kept_when_it_differs(self):
        text = quickstart.format_table(_results(balanced_equals_top1=False))
        self.assertIn("balanced", text.splitlines()[0])
        self.assertRegex(
            text, r"baseline \(cross-entropy\)\s+0\.4000\s+0\.3900\s+0\.8000"
        )

    def test_names_the_dataset_and_a_jax_run_keras_model(self):
        results = _results(balanced_equals_top1=True)
        results["loss"].update(
            export_dir=None, keras_model="q/loss/model.keras"
        )
        text = quickstart.format_table(results)
        self.assertTrue(text.startswith("CIFAR-10-LT test accuracy"))
        self.assertIn("loss     Keras model: q/loss/model.keras", text)
        self.assertIn("baseline SavedModel: q/baseline/export", text)
        results["loss"]["dataset"] = "prepared:/data/x.prepared"
        self.assertTrue(
            quickstart.format_table(results).startswith("test accuracy")
        )


class QuickstartConfigsTest(TestCase):
    def test_loss_flag_is_the_loss_runs_and_the_baseline_is_erm(self):
        from absl import flags
        from absl.testing import flagsaver

        from launch import quickstart
        from tests.launch import helpers

        helpers.define_all_flags()
        quickstart.define_flags()
        flags.FLAGS.mark_as_parsed()
        for loss, options, classifier in (
            (None, {}, "dense"),
            ("logit_adjusted", {}, "dense"),
            ("ldam_drw", {"drw_start_epoch": 3}, "normed"),
        ):
            with flagsaver.flagsaver(loss=loss, **options):
                configs = quickstart.configs(flags.FLAGS)
            trained, baseline = configs["loss"], configs["baseline"]
            self.assertEqual(trained.mode, "loss")
            self.assertEqual(trained.loss, loss or "logit_adjusted")
            self.assertEqual(trained.loss_options, options)
            self.assertEqual(trained.classifier, classifier)
            self.assertEqual(
                (baseline.mode, baseline.loss, baseline.loss_options),
                ("baseline", "crossentropy", {}),
            )
            self.assertEqual(baseline.classifier, "dense")
