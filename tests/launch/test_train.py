"""Tests for launch.train, launch.evaluate and launch.export (in-process)."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from absl import app
from absl import flags
from absl.testing import flagsaver

from la_keras.adjustment import log_adjustment
from la_keras.runs import run_state
from la_keras.runs.resolved import ResolvedConfig
from la_keras.training import TrainingDivergedError
from la_keras.training.checkpoints import checkpoint_dir
from launch import evaluate
from launch import export
from launch import train
from tests import serving_session
from tests.launch import helpers
from tests.launch import shared_runs
from tests.test_case import TestCase

FLAGS = flags.FLAGS


def setUpModule():
    helpers.define_all_flags()


def _stamps(directory):
    """`{file: (mtime_ns, size)}` of the checkpoint files in `directory`."""
    return {
        name: (os.stat(path).st_mtime_ns, os.stat(path).st_size)
        for name in os.listdir(directory)
        if name.startswith("ckpt-")
        for path in [os.path.join(directory, name)]
    }


class TrainRunTest(TestCase):
    """The shared posthoc smoke run (`shared_runs.posthoc_run`); the checks
    that train again do it on a copy."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helpers.define_all_flags()
        cls.model_dir, cls.metrics, _ = shared_runs.posthoc_run()

    def _copy(self):
        """A copy of the run, and the flags that trained it there."""
        model_dir = shared_runs.copy_of(
            shared_runs.posthoc_run(), self.get_temp_dir()
        )
        return model_dir, shared_runs.smoke_flags(model_dir, mode="posthoc")

    def test_metrics_json(self):
        with open(os.path.join(self.model_dir, "metrics.json")) as f:
            metrics = json.load(f)
        self.assertEqual(metrics["step"], 2 * 9)  # 36 train images / 4
        self.assertEqual(metrics["epoch"], 2)
        self.assertEqual(metrics["loss"], "crossentropy")
        test = metrics["test"]
        for key in ("raw", "adjusted", "adjusted_tuned"):
            report = test[key]
            for name in ("top1", "balanced_accuracy", "many", "medium", "few"):
                self.assertIn(name, report)
            self.assertLen(report["per_class_accuracy"], 10)
            self.assertBetween(report["top1"], 0.0, 1.0)
        self.assertEqual(test["adjusted"]["tau"], 1.0)
        # Every class of `test` has <= 10 images: all few-shot.
        self.assertIsNone(test["raw"]["many"])
        self.assertAllClose(
            test["raw"]["few"], test["raw"]["balanced_accuracy"]
        )
        holdout = metrics["holdout"]
        self.assertLen(holdout["tau_sweep"], 9)
        self.assertIn(
            holdout["tau_star"], [r["tau"] for r in holdout["tau_sweep"]]
        )
        self.assertEqual(test["adjusted_tuned"]["tau"], holdout["tau_star"])
        self.assertEqual(metrics["served_tau"], holdout["tau_star"])

    def test_flags_written_next_to_checkpoints(self):
        with open(os.path.join(self.model_dir, "flags.json")) as f:
            resolved = json.load(f)
        self.assertEqual(resolved["model"], "resnet8")
        self.assertEqual(resolved["holdout_fraction"], 0.1)
        self.assertEqual(resolved["schedule"], [[1.0, 1.0]])
        with open(os.path.join(self.model_dir, "flags.txt")) as f:
            lines = f.read().splitlines()
        self.assertIn("--dataset=test", lines)
        self.assertIn("--model=resnet8", lines)
        # flags.txt is a flagfile that reproduces the run's flags.
        with flagsaver.flagsaver():
            FLAGS(["prog", f"--flagfile={self.model_dir}/flags.txt"])
            self.assertEqual(FLAGS.train_batch_size, 4)
            self.assertEqual(FLAGS.model_dir, self.model_dir)

    def test_plot_and_summaries(self):
        with open(
            os.path.join(self.model_dir, "per_class_accuracy.png"), "rb"
        ) as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        tags = {"train": set(), "test": set()}
        for split in tags:
            directory = os.path.join(self.model_dir, "log", split)
            for name in os.listdir(directory):
                for event in tf.compat.v1.train.summary_iterator(
                    os.path.join(directory, name)
                ):
                    tags[split].update(v.tag for v in event.summary.value)
        self.assertContainsSubset({"batch loss", "accuracy"}, tags["train"])
        self.assertContainsSubset(
            {
                "accuracy",
                "logit-adjusted accuracy",
                "balanced accuracy",
                "few accuracy",
                "logit-adjusted balanced accuracy",
            },
            tags["test"],
        )

    def test_saved_model_matches_checkpoint(self):
        config = ResolvedConfig.read(self.model_dir)
        model, info, _ = run_state.restore_model(config)
        loaded = tf.saved_model.load(os.path.join(self.model_dir, "export"))
        self.assertAllClose(
            float(loaded.tau.numpy()), self.metrics["served_tau"]
        )
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (8, 32, 32, 3)).astype(np.uint8)
        served = loaded.signatures["serving_default"](images=images)
        from la_keras.datasets import preprocess_images

        logits = model(
            preprocess_images(images, "cifar"), training=False
        ).numpy()
        adjusted = logits - log_adjustment(
            info.priors, self.metrics["served_tau"]
        )
        self.assertAllClose(served["logits"], adjusted, atol=1e-4)
        self.assertAllEqual(served["classes"], np.argmax(adjusted, -1))
        self._check_in_session(os.path.join(self.model_dir, "export"))

    def _check_in_session(self, export_dir):
        """`export_dir` restored as TF Serving does, against the checkpoint."""
        model, info, _ = run_state.restore_model(
            ResolvedConfig.read(self.model_dir)
        )
        rng = np.random.default_rng(1)
        images = rng.integers(0, 256, (8, 32, 32, 3)).astype(np.uint8)
        serving_session.assert_served_in_session(
            self, export_dir, model, images, info.priors,
            self.metrics["served_tau"], info.class_names,
        )  # fmt: skip

    def test_rerun_resumes_instead_of_restarting(self):
        model_dir, overrides = self._copy()
        ckpt_dir = checkpoint_dir(model_dir)
        before = tf.train.latest_checkpoint(ckpt_dir)
        stamps = _stamps(ckpt_dir)
        log_dir = os.path.join(model_dir, "log")
        old_logs = helpers.event_files(os.path.join(log_dir, "train"))
        with open(os.path.join(model_dir, "metrics.json")) as f:
            speed = json.load(f)["images_per_second"]
        with flagsaver.flagsaver(**overrides):
            with self.assertLogs("absl", level="INFO") as logs:
                metrics = train.run(FLAGS)
        # Resumed at the last step, and trained none again: no loss
        # logged, no checkpoint rewritten.
        self.assertTrue(
            any(f"Resumed from {before} at step 18." in m for m in logs.output),
            logs.output,
        )
        self.assertEqual(helpers.trained_steps(log_dir, old_logs), [])
        self.assertEqual(_stamps(ckpt_dir), stamps)
        self.assertEqual(metrics["step"], 18)
        self.assertEqual(metrics["test"]["raw"], self.metrics["test"]["raw"])
        # The run's speed stays the one measured when it trained.
        self.assertGreater(speed, 0.0)
        self.assertEqual(metrics["images_per_second"], speed)
        with open(os.path.join(model_dir, "metrics.json")) as f:
            self.assertEqual(json.load(f)["images_per_second"], speed)
        # Killed after its last checkpoint, before metrics.json: a rerun
        # measured no speed.
        os.remove(os.path.join(model_dir, "metrics.json"))
        with flagsaver.flagsaver(**overrides):
            self.assertIsNone(train.run(FLAGS)["images_per_second"])

    def test_resume_refuses_changed_flags(self):
        model_dir, overrides = self._copy()
        flags_json = os.path.join(model_dir, "flags.json")
        with open(flags_json) as f:
            written = f.read()
        # The measured case: another --epochs would move the schedule
        # under the restored step.
        with flagsaver.flagsaver(**dict(overrides, epochs=4)):
            with self.assertRaisesRegex(
                app.UsageError,
                "holds a run with other flags: --epochs 2 -> 4. Rerun with "
                "the old values or use a new --model_dir. To train it "
                "further on the same schedule, add --extend.",
            ):
                train.run(FLAGS)
        with flagsaver.flagsaver(
            **dict(overrides, seed=7, holdout_fraction=0.2)
        ):
            with self.assertRaisesRegex(
                app.UsageError,
                "--holdout_fraction 0.1 -> 0.2, --seed 0 -> 7",
            ):
                train.run(FLAGS)
        with open(flags_json) as f:
            self.assertEqual(f.read(), written)

    def test_evaluate_and_export(self):
        output = os.path.join(self.get_temp_dir(), "eval.json")
        with flagsaver.flagsaver(
            model_dir=self.model_dir, output=output, tau_grid=["0", "1"]
        ):
            report = evaluate.run(FLAGS)
        self.assertEqual(report["test"]["raw"], self.metrics["test"]["raw"])
        self.assertEqual(
            [r["tau"] for r in report["holdout"]["tau_sweep"]], [0, 1]
        )
        self.assertLen(report["test_tau_sweep"], 2)
        self.assertTrue(os.path.exists(output))
        export_dir = os.path.join(self.get_temp_dir(), "exported")
        with flagsaver.flagsaver(
            model_dir=self.model_dir, export_dir=export_dir
        ):
            export.run(FLAGS)
        self._check_in_session(export_dir)
        with flagsaver.flagsaver(
            saved_model=export_dir, dataset="test", test_batch_size=10
        ):
            from_saved = evaluate.run(FLAGS)
        # The SavedModel's raw logits give the checkpoint's metrics.
        self.assertAllClose(
            from_saved["test"]["raw"]["balanced_accuracy"],
            self.metrics["test"]["raw"]["balanced_accuracy"],
        )


class ExtendTest(TestCase):
    @pytest.mark.slow
    def test_extended_run_equals_a_run_trained_to_the_end(self):
        def overrides(name, **changes):
            return shared_runs.smoke_flags(
                os.path.join(self.get_temp_dir(), name),
                deterministic=True,
                eval_every_epochs=100,
                **changes,
            )

        # The schedule (warm-up to epoch 1) does not depend on --epochs.
        with flagsaver.flagsaver(**overrides("straight", epochs=3)):
            train.run(FLAGS)
        with flagsaver.flagsaver(**overrides("extended", epochs=2)):
            train.run(FLAGS)
        with flagsaver.flagsaver(
            **overrides("extended", epochs=3, extend=True)
        ):
            metrics = train.run(FLAGS)
        self.assertEqual(metrics["step"], 27)
        straight, extended = (
            tf.train.load_checkpoint(
                tf.train.latest_checkpoint(
                    checkpoint_dir(os.path.join(self.get_temp_dir(), name))
                )
            )
            for name in ("straight", "extended")
        )
        names = [
            n
            for n in straight.get_variable_to_shape_map()
            if "model" in n or "optimizer" in n
        ]
        self.assertNotEmpty(names)
        for name in names:
            np.testing.assert_allclose(
                extended.get_tensor(name),
                straight.get_tensor(name),
                atol=1e-6,
                err_msg=name,
            )


class DivergenceTest(TestCase):
    def test_nan_loss_stops_and_keeps_last_good_checkpoint(self):
        model_dir = os.path.join(self.get_temp_dir(), "nan")
        # Warm-up from lr 0 to 1e8 over one epoch: step 0 is sane, then boom.
        with self.assertRaisesRegex(TrainingDivergedError, "loss is (nan|inf)"):
            shared_runs.train_in_process(
                model_dir,
                base_learning_rate=1e8,
                checkpoint_every_steps=1,
                mode="loss",
            )
        latest = tf.train.latest_checkpoint(checkpoint_dir(model_dir))
        self.assertIsNotNone(latest)
        reader = tf.train.load_checkpoint(latest)
        step = int(latest.rsplit("-", 1)[1])
        self.assertGreaterEqual(step, 1)
        self.assertLess(step, 9)
        for name in reader.get_variable_to_shape_map():
            value = reader.get_tensor(name)
            if np.issubdtype(np.asarray(value).dtype, np.floating):
                self.assertTrue(np.all(np.isfinite(value)), name)
        self.assertFalse(
            os.path.exists(os.path.join(model_dir, "metrics.json"))
        )
