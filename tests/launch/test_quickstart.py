"""The README's quickstart: real CIFAR-10-LT, loss vs baseline (slow)."""

import os
import re

import pytest

from tests.conftest import shared_tfds_dir
from tests.launch import helpers
from tests.test_case import TestCase


@pytest.mark.slow
class QuickstartTest(TestCase):
    def test_loss_beats_baseline_on_balanced_accuracy(self):
        data_dir = shared_tfds_dir()
        if data_dir is None:
            self.skipTest("needs the offline TFDS cifar10 (../shared/tfds)")
        out_dir = os.path.join(self.get_temp_dir(), "quickstart")
        result = helpers.run_module(
            "launch.quickstart",
            [f"--quickstart_dir={out_dir}"],
            timeout=1200,
            extra_env={"TFDS_DATA_DIR": data_dir},
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        # The CIFAR-10 test set is balanced: the table shows top-1, which
        # equals balanced accuracy, and says so under the table.
        self.assertIn("balanced: equal to top-1", result.stdout)
        rows = {}
        for line in result.stdout.splitlines():
            match = re.match(r"(loss|baseline) \(.*?\)\s+([0-9.]+)", line)
            if match:
                rows[match.group(1)] = float(match.group(2))
        self.assertEqual(set(rows), {"loss", "baseline"})
        self.assertGreater(rows["loss"], rows["baseline"])
        for mode in ("loss", "baseline"):
            self.assertTrue(
                os.path.exists(
                    os.path.join(out_dir, mode, "export", "saved_model.pb")
                )
            )
