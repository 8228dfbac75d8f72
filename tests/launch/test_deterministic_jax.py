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
from tests.launch import shared_runs
from tests.test_case import TestCase

pytest.importorskip("jax")

_JAX = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}


class DeterministicOnJaxTest(TestCase):
    @pytest.mark.slow
    def test_step_is_compiled_with_deterministic_ops(self):
        # The shared JAX run trains with --deterministic; the user's
        # XLA_FLAGS it was given stay: XLA dumps the step it compiles.
        shared_runs.jax_run()
        dump_dir = shared_runs.jax_dump_dir()
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
