"""SIGKILL a training run midway; rerunning it resumes bit-for-bit.

On both backends: TensorFlow checkpoints and the JAX backend's `.npz`.
"""

import glob
import json
import os
import re
import signal
import time

import numpy as np
import pytest
import tensorflow as tf

from la_keras.training.checkpoints import checkpoint_dir
from tests.launch import helpers
from tests.test_case import TestCase

EPOCHS = 6
STEPS_PER_EPOCH = 9  # 36 training images of `test` / batch 4
TOTAL_STEPS = EPOCHS * STEPS_PER_EPOCH
KILL_AFTER_STEP = 10  # mid-epoch 2: resuming must replay that epoch's order


def _args(model_dir):
    return helpers.smoke_args(
        model_dir,
        epochs=EPOCHS,
        deterministic=True,
        checkpoint_every_steps=2,
        seed=3,
        mode="loss",
    )


def _checkpoint_steps(model_dir, suffix=".index"):
    paths = glob.glob(
        os.path.join(checkpoint_dir(model_dir), f"ckpt-*{suffix}")
    )
    return sorted(int(re.search(r"ckpt-(\d+)", p).group(1)) for p in paths)


def _variables(model_dir):
    reader = tf.train.load_checkpoint(
        tf.train.latest_checkpoint(checkpoint_dir(model_dir))
    )
    return {
        name: reader.get_tensor(name)
        for name in reader.get_variable_to_shape_map()
        if "model" in name or "optimizer" in name
    }


def _array_variables(model_dir):
    steps = _checkpoint_steps(model_dir, ".npz")
    path = os.path.join(checkpoint_dir(model_dir), f"ckpt-{steps[-1]}.npz")
    with np.load(path) as data:
        return {
            k: data[k]
            for k in data.files
            if k.startswith(("model/", "optimizer/"))
        }


# Slow (a minute): two 6-epoch runs. The default suite resumes runs
# stopped mid-epoch by SIGTERM (test_faults.py PreemptionTest) and from an
# older checkpoint (DamagedCheckpointTest), checks that a resumed run equals
# one trained to the end (test_train.py ExtendTest) and replays the order
# of a resumed epoch (test_train_data.py).
@pytest.mark.slow
class KillAndResumeTest(TestCase):
    env = None  # the TensorFlow backend
    suffix = ".index"
    variables = staticmethod(_variables)

    def test_resumed_run_matches_uninterrupted_run(self):
        root = self.get_temp_dir()
        reference_dir = os.path.join(root, "reference")
        killed_dir = os.path.join(root, "killed")

        # Both runs at once: the reference runs while the other is killed.
        process = helpers.popen_module(
            "launch.train",
            _args(killed_dir),
            os.path.join(root, "killed.log"),
            extra_env=self.env,
        )
        reference = helpers.popen_module(
            "launch.train",
            _args(reference_dir),
            os.path.join(root, "reference.log"),
            extra_env=self.env,
        )
        try:
            deadline = time.time() + 240
            while time.time() < deadline and process.poll() is None:
                steps = _checkpoint_steps(killed_dir, self.suffix)
                if steps and steps[-1] >= KILL_AFTER_STEP:
                    break
                time.sleep(0.02)
            self.assertIsNone(process.poll(), "the run ended before the kill")
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            self.assertEqual(reference.wait(timeout=300), 0)
        finally:
            helpers.kill_all([process, reference])
        self.assertEqual(process.returncode, -signal.SIGKILL)
        killed_at = _checkpoint_steps(killed_dir, self.suffix)[-1]
        self.assertLess(killed_at, TOTAL_STEPS)
        self.assertFalse(
            os.path.exists(os.path.join(killed_dir, "metrics.json"))
        )

        resumed = helpers.run_module(
            "launch.train", _args(killed_dir), extra_env=self.env
        )
        self.assertEqual(resumed.returncode, 0, resumed.stderr[-3000:])
        self.assertIn(f" at step {killed_at}.", resumed.stderr)
        for model_dir in (killed_dir, reference_dir):
            steps = _checkpoint_steps(model_dir, self.suffix)
            self.assertEqual(steps[-1], TOTAL_STEPS)

        expected = self.variables(reference_dir)
        actual = self.variables(killed_dir)
        self.assertEqual(sorted(expected), sorted(actual))
        self.assertNotEmpty(expected)
        for name, value in expected.items():
            # --deterministic: bit for bit, not merely close.
            np.testing.assert_array_equal(actual[name], value, err_msg=name)
        self._rerun_keeps_the_figures(killed_dir)

    def _rerun_keeps_the_figures(self, model_dir):
        """A rerun of the finished run trains nothing and keeps images/s."""
        metrics_path = os.path.join(model_dir, "metrics.json")
        with open(metrics_path) as f:
            speed = json.load(f)["images_per_second"]
        stamps = {
            path: os.stat(path).st_mtime_ns
            for path in glob.glob(
                os.path.join(checkpoint_dir(model_dir), "ckpt-*")
            )
        }
        log_dir = os.path.join(model_dir, "log")
        old_logs = helpers.event_files(os.path.join(log_dir, "train"))
        rerun = helpers.run_module(
            "launch.train", _args(model_dir), extra_env=self.env
        )
        self.assertEqual(rerun.returncode, 0, rerun.stderr[-3000:])
        self.assertIn(f" at step {TOTAL_STEPS}.", rerun.stderr)
        self.assertEqual(helpers.trained_steps(log_dir, old_logs), [])
        for path, mtime in stamps.items():
            self.assertEqual(os.stat(path).st_mtime_ns, mtime, path)
        self.assertGreater(speed, 0.0)
        with open(metrics_path) as f:
            self.assertEqual(json.load(f)["images_per_second"], speed)


# Slow (85 s), as KillAndResumeTest; run these with `-m slow`.
class KillAndResumeOnJaxTest(KillAndResumeTest):
    """The same guarantee on Keras's JAX backend (`.npz` checkpoints)."""

    env = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
    suffix = ".npz"
    variables = staticmethod(_array_variables)

    def setUp(self):
        super().setUp()
        pytest.importorskip("jax")
