"""TensorFlow and JAX training give the same accuracy on the same data (slow).

One `prepared:` CIFAR-10-LT file (from `../shared/tfds`), the quickstart's
recipe (ResNet-8, 5 epochs, loss mode), once per backend. The two runs
cannot agree weight for weight: the backends draw different initial
weights, data orders and crops from the same seed. They must agree in
balanced test accuracy within `TOLERANCE`, and both must have learned.
One step on each backend from the same weights and batch is compared to
float32 rounding (`tests/numerics.py`) in
`tests/training/test_jax_trainer.py`.

    python -m pytest -m slow tests/launch/test_backends_agree.py
"""

import json
import os

import pytest

from tests.launch import helpers
from tests.test_case import TestCase

pytest.importorskip("jax")

SHARED_TFDS = os.path.join(os.path.dirname(helpers.REPO), "shared", "tfds")
# Balanced accuracy, absolute: the two backends' runs differ as two seeds
# of one backend do.
TOLERANCE = 0.05
FLAGS = [
    "--model=resnet8",
    "--mode=loss",
    "--epochs=5",
    "--warmup_epochs=1",
    "--lr_decay_epochs=4",
    "--lr_decay_multipliers=0.1",
    "--test_batch_size=500",
    "--eval_every_epochs=1000",
]


@pytest.mark.slow
class BackendsAgreeTest(TestCase):
    def test_five_epochs_of_cifar10_lt(self):
        if not os.path.isdir(os.path.join(SHARED_TFDS, "cifar10")):
            self.skipTest(f"needs CIFAR-10 in {SHARED_TFDS}")
        root = self.get_temp_dir()
        data = os.path.join(root, "cifar10_lt.prepared")
        made = helpers.run_module(
            "launch.prepare",
            ["--dataset=cifar10_lt", f"--output={data}"],
            extra_env={"TFDS_DATA_DIR": SHARED_TFDS},
        )
        self.assertEqual(made.returncode, 0, made.stderr[-3000:])
        balanced = {}
        for backend in ("tensorflow", "jax"):
            model_dir = os.path.join(root, backend)
            result = helpers.run_module(
                "launch.train",
                [
                    *FLAGS,
                    f"--dataset=prepared:{data}",
                    f"--model_dir={model_dir}",
                    f"--tb_log_dir={model_dir}/log",
                ],
                timeout=1800,
                extra_env={"KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu"},
            )
            self.assertEqual(result.returncode, 0, result.stderr[-3000:])
            with open(os.path.join(model_dir, "metrics.json")) as f:
                metrics = json.load(f)
            balanced[backend] = metrics["test"]["raw"]["balanced_accuracy"]
            print(
                f"{backend}: balanced accuracy {balanced[backend]:.4f}, "
                f"{metrics['images_per_second']:.0f} images/s"
            )
        for value in balanced.values():
            self.assertGreater(value, 0.3)  # chance is 0.1
        self.assertLess(
            abs(balanced["tensorflow"] - balanced["jax"]), TOLERANCE
        )
