"""What a loss-mode run reports, evaluates and serves; the tau refusals.

A loss-mode run's logits were adjusted by its loss: they are reported,
evaluated (launch.evaluate) and served raw (tau 0), and a post-hoc tau is
refused, since it would adjust them twice. Each SavedModel here is also
run the way TF Serving loads it (`tests/serving_session.py`).
"""

import json
import os

import numpy as np
import tensorflow as tf
from absl import app
from absl import flags
from absl.testing import flagsaver

from la_keras.runs import reporting
from la_keras.runs import run_state
from la_keras.runs.resolved import ResolvedConfig
from launch import evaluate
from launch import export
from launch import train
from tests import serving_session
from tests.launch import helpers
from tests.test_case import TestCase

FLAGS = flags.FLAGS


def setUpModule():
    helpers.define_all_flags()


def _config(mode):
    with flagsaver.flagsaver(**helpers.SMOKE_FLAGS, mode=mode):
        return ResolvedConfig.from_flags(FLAGS)


class LossModeReportTest(TestCase):
    """metrics.json and the report of a loss-mode run: raw figures only."""

    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.counts = np.array([50, 20, 10, 5, 2, 1, 1, 1, 1, 1])
        self.priors = self.counts / self.counts.sum()
        self.test = (rng.normal(size=(40, 10)), rng.integers(0, 10, 40))
        self.holdout = (rng.normal(size=(20, 10)), rng.integers(0, 10, 20))

    def _metrics(self, mode):
        return reporting.evaluate_logits(
            _config(mode), self.counts, self.priors, self.test, self.holdout
        )

    def test_loss_mode_has_no_post_hoc_rows(self):
        loss = self._metrics("loss")
        posthoc = self._metrics("posthoc")
        self.assertEqual(set(loss["test"]), {"raw"})
        self.assertEqual(loss["test"]["raw"], posthoc["test"]["raw"])
        self.assertEqual(loss["holdout"], {"num_examples": 20})
        self.assertEqual(
            set(posthoc["test"]), {"raw", "adjusted", "adjusted_tuned"}
        )
        self.assertIsNone(reporting.served_tau(_config("loss"), loss))

    def test_scalars_and_summary(self):
        metrics = dict(
            self._metrics("loss"), dataset="test", model="resnet8",
            mode="loss", loss="logit_adjusted", epoch=2, step=18,
        )  # fmt: skip
        scalars = reporting.test_scalars(metrics, "loss")
        self.assertFalse([k for k in scalars if "adjusted" in k])
        summary = reporting.format_summary(metrics)
        self.assertNotIn("post-hoc", summary.replace(
            reporting.LOSS_MODE_NOTE, ""))  # fmt: skip
        self.assertIn("raw logits", summary)
        self.assertIn(reporting.LOSS_MODE_NOTE, summary)


class LossModeRunTest(TestCase):
    """One loss-mode smoke run: its metrics.json, its exports."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helpers.define_all_flags()
        cls.model_dir = os.path.join(
            tf.compat.v1.test.get_temp_dir(), "loss_mode_run"
        )
        cls.overrides = dict(
            helpers.SMOKE_FLAGS,
            model_dir=cls.model_dir,
            tb_log_dir=os.path.join(cls.model_dir, "log"),
            mode="loss",
        )
        with flagsaver.flagsaver(**cls.overrides):
            cls.metrics = train.run(FLAGS)
        model, info, _ = run_state.restore_model(
            ResolvedConfig.read(cls.model_dir)
        )
        rng = np.random.default_rng(0)
        cls.images = rng.integers(0, 256, (8, 32, 32, 3)).astype(np.uint8)
        # The network's raw logits, served as they are.
        cls.expected = serving_session.expected_outputs(
            model, cls.images, "cifar", class_names=info.class_names
        )

    def _check_served_raw(self, export_dir):
        loaded = tf.saved_model.load(export_dir)
        self.assertEqual(float(loaded.tau.numpy()), 0.0)
        session = serving_session.run_in_session(
            export_dir, self.images, np.zeros([1, 28, 28, 3], np.uint8)
        )
        serving_session.assert_served(self, session["outputs"], self.expected)

    def test_metrics_json_has_raw_figures_only(self):
        with open(os.path.join(self.model_dir, "metrics.json")) as f:
            metrics = json.load(f)
        self.assertEqual(metrics["mode"], "loss")
        self.assertEqual(set(metrics["test"]), {"raw"})
        self.assertEqual(metrics["holdout"], {"num_examples": 10})
        self.assertIsNone(metrics["served_tau"])

    def test_end_of_run_export_serves_raw_logits(self):
        self._check_served_raw(self.metrics["export_dir"])

    def test_export_serves_raw_logits(self):
        export_dir = os.path.join(self.get_temp_dir(), "exported")
        with flagsaver.flagsaver(
            model_dir=self.model_dir, export_dir=export_dir
        ):
            export.run(FLAGS)
        self._check_served_raw(export_dir)

    def test_export_refuses_tau(self):
        with flagsaver.flagsaver(model_dir=self.model_dir, tau=0.5):
            with self.assertRaisesRegex(app.UsageError, "--mode=loss"):
                export.run(FLAGS)
        # From the command line: one line, exit status 1, nothing written.
        helpers.assert_export_refused(
            self, self.model_dir, "--tau=1",
            f"--tau=1: the run in {self.model_dir} was trained with "
            "--mode=loss, whose logits are already adjusted by the loss; "
            "leave --tau out to export them as they are.",
        )  # fmt: skip

    def test_evaluate_reports_raw_figures_only(self):
        output = os.path.join(self.get_temp_dir(), "eval.json")
        with flagsaver.flagsaver(
            model_dir=self.model_dir, output=output,
            weight_norm_taus=["0", "1"],
        ):  # fmt: skip
            report = evaluate.run(FLAGS)
        # The shape of metrics.json for loss mode: raw figures, no tau.
        self.assertEqual(report["test"], self.metrics["test"])
        self.assertEqual(report["mode"], "loss")
        self.assertEqual(report["holdout"], {"num_examples": 10})
        self.assertNotIn("test_tau_sweep", report)
        self.assertNotIn("holdout_warning", report)
        self.assertEqual(report["note"], reporting.LOSS_MODE_NOTE)
        with open(output) as f:
            self.assertEqual(json.load(f)["test"].keys(), {"raw"})
        # Tau-normalisation is reported, labelled as a diagnostic.
        self.assertEqual(
            report["weight_norm"]["diagnostic"],
            reporting.WEIGHT_NORM_LOSS_NOTE,
        )
        printed = reporting.format_evaluation(report, output)
        self.assertIn(reporting.LOSS_MODE_NOTE, printed)
        self.assertNotIn(
            "post-hoc", printed.replace(reporting.LOSS_MODE_NOTE, "")
        )
        self.assertIn(reporting.WEIGHT_NORM_LOSS_NOTE, printed)
        self.assertEqual(printed.splitlines()[-1], f"Report: {output}")

    def test_evaluate_refuses_tau(self):
        for name, value, text in (
            ("tau", 0.5, "0.5"),
            ("tau_grid", ["0", "1"], "0,1"),
        ):
            with flagsaver.flagsaver(model_dir=self.model_dir, **{name: value}):
                with self.assertRaises(app.UsageError) as raised:
                    evaluate.run(FLAGS)
            self.assertEqual(
                str(raised.exception),
                f"--{name}={text}: the run in {self.model_dir} was trained "
                "with --mode=loss, whose logits are already adjusted by the "
                f"loss and are evaluated raw; leave --{name} out.",
            )

    def test_evaluate_saved_model_in_loss_mode(self):
        with flagsaver.flagsaver(
            saved_model=self.metrics["export_dir"], dataset="test",
            test_batch_size=10, holdout_fraction=0.1, mode="loss",
        ):  # fmt: skip
            report = evaluate.run(FLAGS)
            # No folder index kept in the default --model_dir.
            self.assertIsNone(evaluate.run_config(FLAGS).data.folder_index)
        self.assertEqual(set(report["test"]), {"raw"})
        self.assertNotIn("test_tau_sweep", report)
        self.assertAllClose(
            report["test"]["raw"]["per_class_accuracy"],
            self.metrics["test"]["raw"]["per_class_accuracy"],
        )
