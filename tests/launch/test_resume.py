"""SIGKILL a training run midway; rerunning it resumes bit-for-bit."""

import glob
import os
import re
import signal
import time

import numpy as np
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


def _checkpoint_steps(model_dir):
    paths = glob.glob(os.path.join(checkpoint_dir(model_dir), "ckpt-*.index"))
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


class KillAndResumeTest(TestCase):
    def test_resumed_run_matches_uninterrupted_run(self):
        root = self.get_temp_dir()
        reference_dir = os.path.join(root, "reference")
        killed_dir = os.path.join(root, "killed")

        # Both runs at once: the reference runs while the other is killed.
        process = helpers.popen_module(
            "launch.train", _args(killed_dir), os.path.join(root, "killed.log")
        )
        reference = helpers.popen_module(
            "launch.train",
            _args(reference_dir),
            os.path.join(root, "reference.log"),
        )
        try:
            deadline = time.time() + 240
            while time.time() < deadline and process.poll() is None:
                steps = _checkpoint_steps(killed_dir)
                if steps and steps[-1] >= KILL_AFTER_STEP:
                    break
                time.sleep(0.02)
            self.assertIsNone(process.poll(), "the run ended before the kill")
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=30)
            self.assertEqual(reference.wait(timeout=300), 0)
        finally:
            for proc in (process, reference):
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        self.assertEqual(process.returncode, -signal.SIGKILL)
        killed_at = _checkpoint_steps(killed_dir)[-1]
        self.assertLess(killed_at, TOTAL_STEPS)
        self.assertFalse(
            os.path.exists(os.path.join(killed_dir, "metrics.json"))
        )

        resumed = helpers.run_module("launch.train", _args(killed_dir))
        self.assertEqual(resumed.returncode, 0, resumed.stderr[-3000:])
        self.assertIn("Resumed from", resumed.stderr)
        self.assertEqual(_checkpoint_steps(killed_dir)[-1], TOTAL_STEPS)
        self.assertEqual(_checkpoint_steps(reference_dir)[-1], TOTAL_STEPS)

        expected = _variables(reference_dir)
        actual = _variables(killed_dir)
        self.assertEqual(sorted(expected), sorted(actual))
        self.assertNotEmpty(expected)
        for name, value in expected.items():
            np.testing.assert_allclose(
                actual[name], value, atol=1e-6, err_msg=name
            )
