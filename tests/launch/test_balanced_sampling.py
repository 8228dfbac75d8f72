"""Tests for la_keras.runs.balanced_sampling: class-balanced batches train plain
cross-entropy, and a prior correction on top of them is refused."""

from absl import app
from absl import flags
from absl.testing import flagsaver

from la_keras.runs.resolved import ResolvedConfig
from tests.launch import helpers
from tests.test_case import TestCase

FLAGS = flags.FLAGS

# The README's cRT recipe: an earlier run's backbone, frozen, a new head
# trained on class-balanced batches.
CRT = dict(
    dataset="test",
    model="mobilenet",
    init_from="/runs/mobilenet_lora",
    finetune="linear",
    sampler="class_balanced",
)
WHY = (
    "--sampler=class_balanced batches already remove the class prior, and "
    "adjusting for it again over-corrects toward the tail"
)


def _config(**values):
    with flagsaver.flagsaver(**values):
        return ResolvedConfig.from_flags(FLAGS)


class BalancedSamplingTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helpers.define_all_flags()

    def _refusal(self, **values) -> str:
        with self.assertRaises(app.UsageError) as caught:
            _config(**values)
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        self.assertIn(WHY, message)
        return message

    def test_crt_recipe_trains_plain_crossentropy(self):
        config = _config(**CRT)
        self.assertEqual(
            (config.mode, config.loss), ("baseline", "crossentropy")
        )
        self.assertEqual(config.data.sampler, "class_balanced")
        # LIFT's other defaults still apply.
        self.assertEqual(config.schedule.base_learning_rate, 0.01)
        self.assertEqual(config.schedule.lr_schedule, "cosine")
        self.assertEqual(config.schedule.epochs, 10)
        # So does a run from pretrained weights, and one from scratch
        # (whose default mode is posthoc otherwise).
        for values in (
            dict(model="mobilenet", pretrained="w.h5"),
            dict(model="resnet8"),
        ):
            config = _config(dataset="test", sampler="class_balanced", **values)
            self.assertEqual(
                (config.mode, config.loss), ("baseline", "crossentropy")
            )

    def test_shuffled_batches_keep_lift_and_official_defaults(self):
        config = _config(**dict(CRT, sampler="shuffle"))
        self.assertEqual((config.mode, config.loss), ("loss", "logit_adjusted"))
        config = _config(dataset="test", model="resnet8")
        self.assertEqual(
            (config.mode, config.loss), ("posthoc", "crossentropy")
        )

    def test_what_corrects_no_prior_is_accepted(self):
        cases = [
            (dict(mode="baseline"), ("baseline", "crossentropy")),
            (dict(mode="baseline", tau=2.0), ("baseline", "crossentropy")),
            (dict(mode="loss", tau=0.0), ("loss", "logit_adjusted")),
            (dict(mode="loss", loss="crossentropy"), ("loss", "crossentropy")),
            (
                dict(mode="posthoc", tau=0.0, tau_grid=["0"]),
                ("posthoc", "crossentropy"),
            ),
            (dict(loss="focal"), ("baseline", "focal")),
            (dict(loss="ldam"), ("baseline", "ldam")),
            (dict(loss="equalized"), ("baseline", "equalized")),
        ]
        for values, expected in cases:
            with self.subTest(values=values):
                config = _config(**CRT, **values)
                self.assertEqual((config.mode, config.loss), expected)

    def test_the_lift_default_loss_mode_is_refused_with_why(self):
        self.assertEqual(
            self._refusal(**CRT, mode="loss"),
            "--mode=loss (--loss=logit_adjusted) with --tau=1 corrects for "
            f"the class prior, but {WHY}: leave out --mode and --loss to "
            "train plain cross-entropy, or keep the loss with "
            "--sampler=shuffle.",
        )

    def test_prior_correcting_losses_are_refused(self):
        for loss in (
            "logit_adjusted",
            "balanced_softmax",
            "class_balanced",
            "class_balanced_focal",
            "ldam_drw",
        ):
            for mode in ("baseline", "loss"):
                with self.subTest(loss=loss, mode=mode):
                    message = self._refusal(**CRT, mode=mode, loss=loss)
                    self.assertTrue(message.startswith(f"--loss={loss} "))
                    self.assertIn("--sampler=shuffle", message)
        # Without --mode, the refusal is about the class-balanced batches,
        # not the mode the loss would need.
        message = self._refusal(**CRT, loss="balanced_softmax")
        self.assertNotIn("use --mode=loss", message)

    def test_post_hoc_adjustment_is_refused(self):
        self.assertEqual(
            self._refusal(**CRT, mode="posthoc"),
            "--mode=posthoc serves logits - tau*log(prior) (--tau=1, or tau* "
            f"tuned on the holdout over --tau_grid), but {WHY}: use "
            "--mode=baseline (the post-hoc figures are still reported, the "
            "raw logits served), or --sampler=shuffle.",
        )
        # tau 0 with a grid to tune over could still serve a tau* > 0.
        self.assertIn("--tau=0,", self._refusal(**CRT, mode="posthoc", tau=0.0))
        self._refusal(dataset="test", sampler="class_balanced", mode="posthoc")


class CommandLineTest(TestCase):
    def test_refusal_is_the_one_error_line(self):
        model_dir = self.get_temp_dir()
        result = helpers.run_module(
            "launch.train",
            helpers.smoke_args(
                model_dir, sampler="class_balanced", loss="balanced_softmax"
            ),
            timeout=120,
        )
        self.assertEqual(result.returncode, 1)
        self.assertNotIn("Traceback", result.stderr)
        last = result.stderr.strip().splitlines()[-1]
        self.assertTrue(
            last.startswith("launch.train: error: --loss=balanced_softmax ")
        )
        self.assertIn(WHY, last)
