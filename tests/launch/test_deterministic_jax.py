"""--deterministic on Keras's JAX backend (subprocesses on the CPU).

XLA compiles the train step with its deterministic GPU ops (read from the
`debug_options` that XLA dumps with each compiled module), and a run killed
with SIGKILL and rerun ends with the bits of an uninterrupted run (slow:
three runs; `tests/launch/test_resume.py` kills and reruns on JAX in the
default suite).

    python -m pytest -m slow tests/launch/test_deterministic_jax.py
"""

import glob
import os
import re
import signal
import time

import numpy as np
import pytest

from la_keras.training.checkpoints import checkpoint_dir
from tests.launch import helpers
from tests.test_case import TestCase

pytest.importorskip("jax")

_JAX = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
TOTAL_STEPS = 27  # 3 epochs of 9 steps (36 training images of `test` / 4)
KILL_AFTER_STEP = 10  # mid-epoch 2: resuming replays that epoch's order


def _args(model_dir):
    return helpers.smoke_args(
        model_dir,
        epochs=3,
        deterministic=True,
        checkpoint_every_steps=2,
        seed=3,
    )


def _steps(model_dir):
    names = glob.glob(os.path.join(checkpoint_dir(model_dir), "ckpt-*.npz"))
    return sorted(int(re.search(r"ckpt-(\d+)", n).group(1)) for n in names)


def _final_checkpoint(model_dir):
    path = os.path.join(checkpoint_dir(model_dir), f"ckpt-{TOTAL_STEPS}.npz")
    with np.load(path) as data:
        return {name: data[name] for name in data.files}


class DeterministicOnJaxTest(TestCase):
    def test_step_is_compiled_with_deterministic_ops(self):
        root = self.get_temp_dir()
        dump_dir = os.path.join(root, "xla_dump")
        # The user's XLA_FLAGS stay: XLA dumps the step it compiles.
        dump_flags = f"--xla_dump_to={dump_dir} --xla_dump_hlo_module_re=step"
        result = helpers.run_module(
            "launch.train",
            helpers.smoke_args(
                os.path.join(root, "run"), epochs=1, deterministic=True
            ),
            extra_env=dict(_JAX, XLA_FLAGS=dump_flags),
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        options = glob.glob(os.path.join(dump_dir, "*_step_fn.debug_options"))
        self.assertNotEmpty(options, os.listdir(dump_dir))
        for path in options:
            with open(path) as f:
                self.assertIn("xla_gpu_deterministic_ops: true", f.read())

    @pytest.mark.slow
    def test_killed_and_rerun_run_equals_uninterrupted_run_bitwise(self):
        root = self.get_temp_dir()
        reference_dir = os.path.join(root, "reference")
        killed_dir = os.path.join(root, "killed")
        # Both runs at once: the reference runs while the other is killed.
        killed = helpers.popen_module(
            "launch.train",
            _args(killed_dir),
            os.path.join(root, "killed.log"),
            extra_env=_JAX,
        )
        reference = helpers.popen_module(
            "launch.train",
            _args(reference_dir),
            os.path.join(root, "reference.log"),
            extra_env=_JAX,
        )
        try:
            deadline = time.time() + 240
            while time.time() < deadline and killed.poll() is None:
                steps = _steps(killed_dir)
                if steps and steps[-1] >= KILL_AFTER_STEP:
                    break
                time.sleep(0.02)
            self.assertIsNone(killed.poll(), "the run ended before the kill")
            killed.send_signal(signal.SIGKILL)
            killed.wait(timeout=30)
            self.assertEqual(reference.wait(timeout=300), 0)
        finally:
            for process in (killed, reference):
                if process.poll() is None:
                    process.kill()
                    process.wait()
        self.assertEqual(killed.returncode, -signal.SIGKILL)
        killed_at = _steps(killed_dir)[-1]
        self.assertLess(killed_at, TOTAL_STEPS)

        rerun = helpers.run_module(
            "launch.train", _args(killed_dir), extra_env=_JAX
        )
        self.assertEqual(rerun.returncode, 0, rerun.stderr[-3000:])
        self.assertIn(
            f"ckpt-{killed_at}.npz at step {killed_at}.", rerun.stderr
        )
        expected = _final_checkpoint(reference_dir)
        actual = _final_checkpoint(killed_dir)
        self.assertEqual(sorted(actual), sorted(expected))
        self.assertTrue(any(k.startswith("model/") for k in expected))
        for name, value in expected.items():
            np.testing.assert_array_equal(actual[name], value, err_msg=name)

    def test_refused_once_jax_has_started_its_devices(self):
        script = (
            "import jax\n"
            "from absl import app\n"
            "from launch import train_jax\n"
            "jax.devices()\n"
            "try:\n"
            "    train_jax.enable_determinism()\n"
            "except app.UsageError as e:\n"
            "    print(e)\n"
        )
        result = helpers.run_python(["-c", script], extra_env=_JAX)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertEqual(
            result.stdout.strip(),
            "--deterministic on JAX needs XLA_FLAGS to hold "
            "--xla_gpu_deterministic_ops=true before JAX starts its devices: "
            "this process started them already; set it in the environment.",
        )
        # Set in the environment, it is accepted as it is.
        accepted = helpers.run_python(
            ["-c", script + "import os; print(os.environ['XLA_FLAGS'])"],
            extra_env=dict(_JAX, XLA_FLAGS="--xla_gpu_deterministic_ops=true"),
        )
        self.assertEqual(accepted.returncode, 0, accepted.stderr[-3000:])
        self.assertEqual(
            accepted.stdout.strip(), "--xla_gpu_deterministic_ops=true"
        )
