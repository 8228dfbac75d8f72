"""Bad flags get one clear line, not a traceback; quiet default output."""

import re
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags
from absl.testing import flagsaver

from la_keras.runs import common
from la_keras.runs import train_tf
from la_keras.runs.resolved import ResolvedConfig
from la_keras.runs.run_config import RunConfig
from tests.launch import helpers
from tests.launch import shared_runs
from tests.test_case import TestCase

FLAGS = flags.FLAGS


def setUpModule():
    helpers.define_all_flags()


class ValidatorTest(TestCase):
    def assert_rejected(self, arg, pattern):
        with flagsaver.flagsaver():
            with self.assertRaisesRegex(flags.IllegalFlagValueError, pattern):
                FLAGS(["prog", arg])

    def test_unknown_names(self):
        self.assert_rejected(
            "--dataset=nope", "Unknown --dataset='nope'.*cifar10_lt"
        )
        self.assert_rejected("--strategy=bogus", "one_device, mirrored")
        self.assert_rejected("--model=vgg16", "official_resnet32")
        self.assert_rejected("--loss=nope", "Known losses: .*crossentropy")

    def test_bad_values(self):
        self.assert_rejected("--tau=-0.5", "--tau must be a finite float >= 0")
        self.assert_rejected("--tau=inf", "--tau must be a finite float >= 0")
        self.assert_rejected("--tau=nan", "--tau must be a finite float >= 0")
        self.assert_rejected("--tau_grid=0,inf", "tau_grid")
        self.assert_rejected("--base_learning_rate=nan", "finite")
        self.assert_rejected(
            "--ratio=0.5", "--ratio must be a finite float >= 1"
        )
        self.assert_rejected("--tau_grid=0,x", "tau_grid")
        self.assert_rejected(
            "--train_batch_size=0", "train_batch_size must be >= 1"
        )
        self.assert_rejected("--holdout_fraction=1.0", r"\[0, 1\)")

    def test_accepted(self):
        with flagsaver.flagsaver():
            FLAGS(["prog", "--dataset=tfds:fashion_mnist", "--model=resnet20"])
            self.assertEqual(FLAGS.model, "resnet20")

    def test_loss_catalogue_read_at_validation_time(self):
        names = ["crossentropy", "logit_adjusted", "added_later"]
        with mock.patch("la_keras.losses.names", return_value=names):
            with flagsaver.flagsaver():
                FLAGS(["prog", "--loss=added_later"])
                self.assertEqual(FLAGS.loss, "added_later")


class UsageErrorTest(TestCase):
    def test_batch_not_divisible_by_replicas(self):
        with flagsaver.flagsaver(
            **dict(helpers.SMOKE_FLAGS, train_batch_size=5)
        ):
            config = ResolvedConfig.from_flags(FLAGS)
        with self.assertRaisesRegex(
            app.UsageError, "--train_batch_size=5 is not divisible by the 2"
        ):
            train_tf.build_datasets(config, num_replicas=2)

    def test_dataset_without_schedule_gets_the_default(self):
        # Any dataset trains with defaults: DEFAULT_EPOCHS epochs and the
        # official CIFAR-10-LT schedule scaled to them.
        from la_keras import schedules

        with flagsaver.flagsaver(dataset="mnist_lt"):
            config = ResolvedConfig.from_flags(FLAGS)
        self.assertEqual(config.schedule.epochs, schedules.DEFAULT_EPOCHS)
        official = schedules.OFFICIAL_SCHEDULES["cifar10-lt"]
        factor = schedules.DEFAULT_EPOCHS / official["epochs"]
        self.assertAllClose(
            [e for _, e in config.schedule.schedule],
            [e * factor for _, e in official["schedule"]],
        )
        with flagsaver.flagsaver(dataset="tfds:fashion_mnist", epochs=10):
            config = ResolvedConfig.from_flags(FLAGS)
        self.assertEqual(config.schedule.epochs, 10)
        self.assertAllClose(
            config.schedule.schedule[0][1], 20 * 10 / official["epochs"]
        )

    def test_bad_schedule(self):
        with flagsaver.flagsaver(
            **helpers.SMOKE_FLAGS,
            lr_decay_epochs=["5"],
            lr_decay_multipliers=[],
        ):
            with self.assertRaisesRegex(app.UsageError, "same length"):
                ResolvedConfig.from_flags(FLAGS)

    def test_tpu_unreachable(self):
        resolver = mock.Mock(side_effect=ValueError("no TPU here"))
        with flagsaver.flagsaver(
            **helpers.SMOKE_FLAGS, strategy="tpu", tpu="x"
        ):
            config = ResolvedConfig.from_flags(FLAGS)
        with mock.patch.object(
            tf.distribute.cluster_resolver, "TPUClusterResolver", resolver
        ):
            with self.assertRaisesRegex(
                app.UsageError, "--strategy=tpu.*no TPU here"
            ):
                common.create_strategy(config)

    def test_official_dataset_without_files(self):
        with flagsaver.flagsaver(
            dataset="cifar10-lt", data_home=self.get_temp_dir(), epochs=1
        ):
            config = ResolvedConfig.from_flags(FLAGS)
        with self.assertRaisesRegex(app.UsageError, "--dataset=cifar10-lt"):
            train_tf.build_datasets(config, num_replicas=1)

    def test_prior_loss_outside_loss_mode_is_refused(self):
        # logit_adjusted and balanced_softmax add log(priors) in training: a
        # post-hoc adjustment (or its rows) on top would adjust twice.
        for mode in ("posthoc", "baseline"):
            for loss in ("logit_adjusted", "balanced_softmax"):
                with flagsaver.flagsaver(
                    **helpers.SMOKE_FLAGS, mode=mode, loss=loss
                ):
                    with self.assertRaises(app.UsageError) as raised:
                        ResolvedConfig.from_flags(FLAGS)
                self.assertEqual(
                    str(raised.exception),
                    f"--loss={loss} already adjusts the logits by the class "
                    f"priors, and --mode={mode} would adjust them again "
                    "after training (post-hoc rows, served tau); use "
                    "--mode=loss.",
                )
        with flagsaver.flagsaver(
            **helpers.SMOKE_FLAGS, mode="loss", loss="balanced_softmax"
        ):
            self.assertEqual(ResolvedConfig.from_flags(FLAGS).mode, "loss")
        # Losses that are no prior adjustment keep the warning only.
        for loss in ("focal", "class_balanced", "ldam"):
            with flagsaver.flagsaver(
                **helpers.SMOKE_FLAGS, mode="posthoc", loss=loss
            ):
                with self.assertLogs(level="WARNING") as logs:
                    config = ResolvedConfig.from_flags(FLAGS)
            self.assertEqual(config.loss, loss)
            self.assertIn(
                f"--mode=posthoc trains with --loss={loss}", logs.output[0]
            )


class CommandLineTest(TestCase):
    """The real command: one error line on stderr, no traceback."""

    def test_unknown_strategy(self):
        result = helpers.run_module(
            "launch.train", ["--dataset=test", "--strategy=bogus"], timeout=120
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertNotIn("Traceback", result.stderr)
        errors = [l for l in result.stderr.splitlines() if "bogus" in l]  # noqa: E741
        self.assertLen(errors, 1)
        self.assertIn("--strategy must be one of", errors[0])

    def test_usage_error_from_run(self):
        model_dir = self.get_temp_dir()
        result = helpers.run_module(
            "launch.train",
            helpers.smoke_args(model_dir, train_batch_size=5)
            + ["--strategy=mirrored", "--num_logical_cpus=2"],
            timeout=120,
        )
        self.assertEqual(result.returncode, 1)
        self.assertNotIn("Traceback", result.stderr)
        last = result.stderr.strip().splitlines()[-1]
        self.assertEqual(
            last,
            "launch.train: error: --train_batch_size=5 is not divisible by the "
            "2 replicas of the strategy.",
        )


class PresetTest(TestCase):
    """The --flagfile presets reproduce the official schedules."""

    def test_cifar_presets(self):
        from la_keras import schedules

        for cfg, name in (
            ("cifar10_lt", "cifar10-lt"),
            ("cifar100_lt", "cifar100-lt"),
        ):
            path = f"{helpers.REPO}/launch/configs/{cfg}.cfg"
            with flagsaver.flagsaver():
                FLAGS(["prog", f"--flagfile={path}"])
                config = ResolvedConfig.from_flags(FLAGS)
            official = schedules.OFFICIAL_SCHEDULES[name]
            self.assertEqual(config.data.dataset, name)
            self.assertEqual(config.schedule.epochs, official["epochs"])
            self.assertEqual(
                [tuple(p) for p in config.schedule.schedule],
                [(float(m), float(e)) for m, e in official["schedule"]],
            )
            self.assertEqual(config.data.train_batch_size, 128)
            self.assertEqual(config.model, "official_resnet32")
            self.assertTrue(config.schedule.nesterov)
            self.assertEqual(config.schedule.momentum, 0.9)
            # The official recipe trains on the whole long-tailed set.
            self.assertEqual(config.data.holdout_fraction, 0.0)

    def test_official_defaults_without_flagfile(self):
        with flagsaver.flagsaver(dataset="cifar10_lt"):
            config = ResolvedConfig.from_flags(FLAGS)
        self.assertEqual(config.schedule.epochs, 1241)
        self.assertEqual(config.schedule.schedule[0], (1.0, 20))
        self.assertEqual(config.loss, "crossentropy")
        # The TFDS twin of the official set trains on all of it too.
        self.assertEqual(config.data.holdout_fraction, 0.0)
        with flagsaver.flagsaver(dataset="cifar100-lt", mode="loss"):
            config = ResolvedConfig.from_flags(FLAGS)
        self.assertEqual(config.loss, "logit_adjusted")
        # The official TFRecords: train on all of them, read from data_home.
        self.assertEqual(config.data.holdout_fraction, 0.0)
        self.assertEqual(config.data.dataset_dir, "logit_adjustment/data")


class QuietOutputTest(TestCase):
    """By default: a progress bar and a report, no TensorFlow chatter."""

    def test_default_output_reads_like_a_report(self):
        # The shared post-hoc run: `python -m launch.train` of the smoke
        # run, without --verbosity or TF_CPP_MIN_LOG_LEVEL.
        run = shared_runs.posthoc_run()
        model_dir, result = run.model_dir, run.output
        self.assertNotIn("--verbosity", " ".join(result.args))
        for noise in ("oneDNN", "cuInit", "cuda", "I0000", "E0000", "INFO"):
            self.assertNotIn(noise, result.stderr)
            self.assertNotIn(noise, result.stdout)
        # Progress and the report with the table. The output is a pipe, not
        # a terminal: plain progress lines (the first and the last, for a
        # run this short), no redraws or colour codes, and no library's
        # deprecation notices.
        for control in ("\x1b", "\r", "\b"):
            self.assertNotIn(control, result.stdout + result.stderr)
        self.assertNotIn("deprecated", result.stdout + result.stderr)
        progress = re.findall(r"^step \d+/18\b.*$", result.stdout, re.M)
        self.assertEqual(progress[0], "step 0/18")
        self.assertTrue(progress[-1].startswith("step 18/18 - loss: "))
        self.assertLessEqual(len(progress), 3)
        self.assertIn("18/18", result.stdout)
        self.assertIn("loss:", result.stdout)
        self.assertIn("images/s:", result.stdout)
        self.assertIn("test resnet8 mode=posthoc", result.stdout)
        self.assertRegex(result.stdout, r"raw logits\s+[0-9.]+\s+[0-9.]+")
        self.assertIn(f"SavedModel: {model_dir}/export", result.stdout)


class ClassifierFlagTest(TestCase):
    def test_auto_is_normed_for_ldam_only(self):
        from la_keras.layers import NormedDense

        cases = (
            (dict(mode="loss", loss="ldam"), "normed"),
            (dict(mode="loss", loss="ldam_drw"), "normed"),
            (dict(mode="loss", loss="logit_adjusted"), "dense"),
            (dict(mode="posthoc"), "dense"),
            (dict(mode="loss", loss="ldam", classifier="dense"), "dense"),
            (dict(mode="posthoc", classifier="normed"), "normed"),
        )
        for overrides, expected in cases:
            with flagsaver.flagsaver(**dict(helpers.SMOKE_FLAGS, **overrides)):
                config = ResolvedConfig.from_flags(FLAGS)
            self.assertEqual(config.classifier, expected, overrides)
            self.assertEqual(config.to_dict()["classifier"], expected)
            head = config.build_model(10, (32, 32, 3)).layers[-1]
            self.assertEqual(
                isinstance(head, NormedDense), expected == "normed"
            )

    def test_cosine_is_normed_dense_times_the_scale(self):
        from la_keras.layers import NormedDense

        overrides = dict(classifier="cosine", cosine_scale=12.5)
        with flagsaver.flagsaver(**dict(helpers.SMOKE_FLAGS, **overrides)):
            config = ResolvedConfig.from_flags(FLAGS)
        self.assertEqual(config.to_dict()["cosine_scale"], 12.5)
        config = ResolvedConfig.from_dict(config.to_dict())
        model = config.build_model(10, (32, 32, 3))
        head = model.layers[-1]
        self.assertIsInstance(head, NormedDense)
        self.assertEqual(head.get_config()["scale"], 12.5)
        x = np.random.default_rng(0).random((2, 32, 32, 3), "float32")
        logits = keras.ops.convert_to_numpy(model(x))
        self.assertLessEqual(np.abs(logits).max(), 12.5 * (1 + 1e-6))
        self.assertGreater(np.abs(logits).max(), 1.0)
        for bad in (0, -1.0, float("inf")):
            with self.assertRaisesRegex(ValueError, "--cosine_scale must"):
                RunConfig(classifier="cosine", cosine_scale=bad)

    def test_flags_json_without_classifier_is_a_dense_run(self):
        # Runs written before --classifier existed had a dense head.
        with flagsaver.flagsaver(
            **dict(helpers.SMOKE_FLAGS, mode="loss", loss="ldam")
        ):
            flat = ResolvedConfig.from_flags(FLAGS).to_dict()
        del flat["classifier"]
        self.assertEqual(ResolvedConfig.from_dict(flat).classifier, "dense")
