"""--deterministic on Keras's JAX backend (subprocesses on the CPU).

XLA compiles the train step with its deterministic GPU ops (read from the
`debug_options` that XLA dumps with each compiled module). That a run killed
with SIGKILL and rerun ends with the bits of an uninterrupted run is
`tests/launch/test_resume.py::KillAndResumeOnJaxTest`.
"""

import glob
import os

import pytest

from tests.launch import helpers
from tests.test_case import TestCase

pytest.importorskip("jax")

_JAX = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}


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

    def test_refused_once_jax_has_started_its_devices(self):
        script = (
            "import jax\n"
            "from absl import app\n"
            "from la_keras.runs import train_jax\n"
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
