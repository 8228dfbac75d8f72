"""The reliability suite: the README's faults, replayed on small runs.

Each test is bounded in time (subprocess timeouts, bounded loops) and uses
the synthetic `test` dataset. Labels, data files and priors are covered in
tests/losses, tests/test_metrics.py, tests/datasets and tests/test_priors.py.
"""

import glob
import json
import os
import re
import shutil
import signal
import subprocess
from unittest import mock

import pytest
import tensorflow as tf
from absl import app
from absl import flags
from absl.testing import flagsaver

from la_keras.runs import lock
from la_keras.training.checkpoints import checkpoint_dir
from la_keras.training.preemption import PREEMPTED_EXIT_CODE
from launch import evaluate
from tests.launch import helpers
from tests.launch import shared_runs
from tests.test_case import TestCase

FLAGS = flags.FLAGS


def setUpModule():
    helpers.define_all_flags()


def _steps(model_dir, suffix=".index"):
    paths = glob.glob(
        os.path.join(checkpoint_dir(model_dir), f"ckpt-*{suffix}")
    )
    return sorted(int(re.search(r"ckpt-(\d+)", p).group(1)) for p in paths)


def _truncate_data(model_dir, step):
    (data,) = glob.glob(
        os.path.join(checkpoint_dir(model_dir), f"ckpt-{step}.data-*")
    )
    with open(data, "r+b") as f:
        f.truncate(os.path.getsize(data) // 3)


class PreemptionTest(TestCase):
    env = None  # the TensorFlow backend
    suffix = ".index"

    def test_sigterm_checkpoints_mid_epoch_and_rerun_continues(self):
        model_dir = os.path.join(self.get_temp_dir(), "preempted")
        # 9 steps an epoch, 1 step per loop call: SIGTERM is seen at once.
        # A checkpoint every 4 steps shows when the run is inside the second
        # epoch (ckpt-12), on a machine of any speed or load.
        args = helpers.smoke_args(
            model_dir,
            epochs=6,
            steps_per_loop=1,
            eval_every_epochs=100,
            checkpoint_every_steps=4,
        )
        log_path = os.path.join(self.get_temp_dir(), "preempted.log")
        process = helpers.popen_module(
            "launch.train", args, log_path, extra_env=self.env
        )
        returncode = helpers.stop_when(  # inside the second epoch
            process, lambda: any(s > 9 for s in _steps(model_dir, self.suffix))
        )
        with open(log_path) as f:
            log = f.read()
        self.assertEqual(returncode, PREEMPTED_EXIT_CODE, log[-3000:])
        stopped = int(re.search(r"Stopped at step (\d+)", log).group(1))
        self.assertEqual(_steps(model_dir, self.suffix)[-1], stopped)
        self.assertGreater(stopped, 9)
        self.assertFalse(
            os.path.exists(os.path.join(model_dir, "metrics.json"))
        )
        resumed = helpers.run_module("launch.train", args, extra_env=self.env)
        self.assertEqual(resumed.returncode, 0, resumed.stderr[-3000:])
        self.assertIn(
            f"ckpt-{stopped}{self.suffix.replace('.index', '')} at step "
            f"{stopped}",
            resumed.stderr,
        )
        self.assertEqual(_steps(model_dir, self.suffix)[-1], 6 * 9)


# Slow (about a minute and a half): the default suite stops a TensorFlow
# run with SIGTERM (PreemptionTest: the training loop and its SIGTERM
# checkpoint are the same on both backends) and resumes a JAX run from its
# `.npz` checkpoint (test_train_jax.py SharedJaxRunTest).
@pytest.mark.slow
class PreemptionOnJaxTest(PreemptionTest):
    """The same on Keras's JAX backend (`.npz` checkpoints)."""

    env = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    suffix = ".npz"

    def setUp(self):
        super().setUp()
        pytest.importorskip("jax")


class DamagedCheckpointTest(TestCase):
    """A rerun resumes from the newest checkpoint that restores.

    One run trains 3 epochs (checkpoints 9, 18, 27: keep_checkpoints=3);
    each case damages the newest checkpoint of a copy of it and reruns the
    same command: the rerun must resume at step 18 and train steps 19 to 27
    only. A restart from step 0 would end with the same checkpoint names,
    so the checks are the resumed step, the steps the rerun logged and the
    untouched older checkpoints.
    """

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.run_dir = os.path.join(
            tf.compat.v1.test.get_temp_dir(), "damaged_checkpoint_run"
        )
        cls._train(cls.run_dir)

    @staticmethod
    def _train(model_dir):
        return shared_runs.train_in_process(
            model_dir,
            epochs=3,
            keep_checkpoints=3,
            eval_every_epochs=100,
            checkpoint_every_seconds=0.0,  # one checkpoint per epoch
        )

    def _trained(self, name):
        """A copy of the 3-epoch run, to damage."""
        model_dir = os.path.join(self.get_temp_dir(), name)
        shutil.copytree(self.run_dir, model_dir)
        self.assertEqual(_steps(model_dir), [9, 18, 27])
        return model_dir

    def _rerun_resumes_at_18(self, model_dir):
        """Reruns; checks it resumed at step 18 and retrained none before."""
        ckpt_dir = checkpoint_dir(model_dir)
        kept = {
            name: os.stat(os.path.join(ckpt_dir, name)).st_mtime_ns
            for name in os.listdir(ckpt_dir)
            if re.match(r"ckpt-(9|18)\.", name)
        }
        log_dir = os.path.join(model_dir, "log")
        old_logs = helpers.event_files(os.path.join(log_dir, "train"))
        with self.assertLogs("absl", level="INFO") as logs:
            metrics = self._train(model_dir)
        self.assertTrue(
            any(
                re.search(r"Resumed from \S*ckpt-18 at step 18\.$", line)
                for line in logs.output
            ),
            logs.output,
        )
        self.assertEqual(helpers.trained_steps(log_dir, old_logs), [27])
        for name, mtime in kept.items():
            self.assertEqual(
                os.stat(os.path.join(ckpt_dir, name)).st_mtime_ns, mtime, name
            )
        self.assertEqual(_steps(model_dir), [9, 18, 27])
        self.assertEqual(metrics["step"], 27)
        self.assertEqual(metrics["epoch"], 3)
        return logs

    def test_truncated_newest_is_skipped(self):
        model_dir = self._trained("truncated")
        _truncate_data(model_dir, 27)
        logs = self._rerun_resumes_at_18(model_dir)
        self.assertTrue(
            any("WARNING" in s and "ckpt-27" in s for s in logs.output),
            logs.output,
        )

    def test_missing_state_file_and_index(self):
        model_dir = self._trained("no_state")
        os.remove(os.path.join(checkpoint_dir(model_dir), "checkpoint"))
        os.remove(os.path.join(checkpoint_dir(model_dir), "ckpt-27.index"))
        self._rerun_resumes_at_18(model_dir)

    def test_all_damaged_refuses_without_deleting(self):
        model_dir = self._trained("all_damaged")
        for step in (9, 18, 27):
            _truncate_data(model_dir, step)
        before = sorted(os.listdir(checkpoint_dir(model_dir)))
        with self.assertRaisesRegex(app.UsageError, "damaged.*Move them away"):
            self._train(model_dir)
        self.assertEqual(sorted(os.listdir(checkpoint_dir(model_dir))), before)


class ModelDirTest(TestCase):
    def _run(self, model_dir):
        return shared_runs.train_in_process(model_dir, epochs=1)

    def test_second_writer_refused_with_holder(self):
        model_dir = os.path.join(self.get_temp_dir(), "busy")
        os.makedirs(model_dir)
        with helpers.lock_held_by_live_process(model_dir) as pid:
            with self.assertRaisesRegex(
                app.UsageError,
                rf"in use by pid {pid} on host .*delete .*\.lock\.00000001",
            ):
                self._run(model_dir)
        self.assertEqual(os.listdir(model_dir), [".lock.00000001"])

    def test_stale_lock_taken_over(self):
        # A lease of this machine whose pid is gone: taken at once, although
        # it was refreshed just now.
        model_dir = os.path.join(self.get_temp_dir(), "stale")
        os.makedirs(model_dir)
        dead = subprocess.Popen(["true"])
        dead.wait()
        helpers.write_lease(model_dir, pid=dead.pid)
        metrics = self._run(model_dir)
        self.assertEqual(metrics["epoch"], 1)
        (path,) = glob.glob(os.path.join(model_dir, lock.LEASE_PREFIX + "*"))
        self.assertTrue(path.endswith(".lock.00000002"))
        with open(path) as f:
            self.assertTrue(json.load(f)["released"])

    def test_model_dir_is_a_file(self):
        path = os.path.join(self.get_temp_dir(), "a_file")
        with open(path, "w") as f:
            f.write("x")
        with self.assertRaisesRegex(app.UsageError, "is a file, not a folder"):
            self._run(path)

    def test_model_dir_cannot_be_created(self):
        with mock.patch(
            "os.makedirs", side_effect=PermissionError(13, "Permission denied")
        ):
            with self.assertRaisesRegex(
                app.UsageError, "cannot be created: Permission denied"
            ):
                self._run(os.path.join(self.get_temp_dir(), "denied"))

    def test_command_line_error_is_one_line(self):
        path = os.path.join(self.get_temp_dir(), "file_dir")
        with open(path, "w") as f:
            f.write("x")
        result = helpers.run_module(
            "launch.train", helpers.smoke_args(path), timeout=120
        )
        self.assertEqual(result.returncode, 1)
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(
            result.stderr.strip().splitlines()[-1],
            f"launch.train: error: --model_dir={path} is a file, not a folder.",
        )


# Slow (27 s: six launch.export processes). The default suite checks the
# folder replacement launch.export writes through, whole or not at all,
# and what a killed process leaves (tests/runs/test_outputs.py), and
# exports runs end to end (test_train.py, test_export.py).
@pytest.mark.slow
class AtomicExportTest(TestCase):
    """A killed launch.export leaves the previous complete SavedModel."""

    def test_kill_at_several_points(self):
        model_dir = shared_runs.copy_of(
            shared_runs.posthoc_run(), self.get_temp_dir()
        )
        export_dir = os.path.join(model_dir, "export")
        images = tf.zeros([2, 32, 32, 3], tf.uint8)
        reference = (
            tf.saved_model.load(export_dir)
            .signatures["serving_default"](images=images)["logits"]
            .numpy()
        )
        old_tau = float(tf.saved_model.load(export_dir).tau.numpy())
        new_tau = 1.5 if old_tau != 1.5 else 0.5
        args = ["--verbosity=0", f"--model_dir={model_dir}", f"--tau={new_tau}"]
        finished = False
        for delay in (1.0, 3.0, 5.0, 7.0, 9.0, 60.0):  # the last one finishes
            log = os.path.join(self.get_temp_dir(), f"export_{delay}.log")
            process = helpers.popen_module("launch.export", args, log)
            try:
                process.wait(timeout=delay)
                finished = True
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.wait()
            loaded = tf.saved_model.load(export_dir)
            logits = loaded.signatures["serving_default"](images=images)
            tau = float(loaded.tau.numpy())
            # The previous complete export or the new one.
            self.assertIn(tau, (old_tau, new_tau))
            if tau == old_tau:
                self.assertAllClose(logits["logits"], reference, atol=1e-5)
            if finished:
                break
        self.assertTrue(finished)
        self.assertEqual(
            float(tf.saved_model.load(export_dir).tau.numpy()), new_tau
        )
        leftovers = [
            n for n in os.listdir(model_dir) if n.startswith(".export")
        ]
        self.assertEqual(leftovers, [])


class EvaluateDatasetTest(TestCase):
    def test_other_dataset_than_the_run_is_refused(self):
        # launch.evaluate writes its report into the run: a copy.
        model_dir = shared_runs.copy_of(
            shared_runs.posthoc_run(), self.get_temp_dir()
        )
        with flagsaver.flagsaver(model_dir=model_dir, dataset="mnist_lt"):
            with self.assertRaisesRegex(
                app.UsageError, "--dataset=mnist_lt conflicts .*dataset=test"
            ):
                evaluate.run(FLAGS)
        with flagsaver.flagsaver(model_dir=model_dir, dataset="test"):
            report = evaluate.run(FLAGS)
        self.assertIn("raw", report["test"])
