"""Many epoch boundaries at a realistic size, in a subprocess (slow).

A generated folder of varied photos (JPEGs and PNGs of 60 to 1,000 px, gray,
CMYK, progressive, EXIF-rotated, a long tail) trained at 96 px for 60
epochs: at this size Grappler's memory optimizer adds `TemporaryVariable`
ops to the train step, which a global-seed change on the data thread at an
epoch boundary can free under the running step (SIGSEGV, exit 139, within a
minute or two; see `la_keras/training/__init__.py`). Run as a subprocess, so
that a crash is this test's failure, not the end of pytest.
"""

import json
import os
import signal

import pytest

from bench.varied_folder import make_varied_folder
from tests.launch import helpers
from tests.test_case import TestCase


@pytest.mark.slow
class SoakTest(TestCase):
    def test_sixty_epochs_at_96_px(self):
        root = os.path.join(self.get_temp_dir(), "photos")
        counts = make_varied_folder(
            root, num_classes=10, max_per_class=170, test_per_class=5
        )
        self.assertGreater(sum(counts["train"]), 400)
        model_dir = os.path.join(self.get_temp_dir(), "run")
        result = helpers.run_module(
            "launch.train",
            [
                f"--dataset=folder:{root}",
                "--model=resnet8",
                "--image_size=96",
                "--epochs=60",
                "--train_batch_size=32",
                f"--model_dir={model_dir}",
                f"--tb_log_dir={model_dir}/log",
            ],
            timeout=1800,
        )
        crashed = -result.returncode in (signal.SIGSEGV, signal.SIGABRT)
        self.assertFalse(crashed, f"crashed: {result.stderr[-3000:]}")
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        with open(os.path.join(model_dir, "metrics.json")) as f:
            metrics = json.load(f)
        self.assertEqual(metrics["epoch"], 60)
