"""--extend of a cosine run is refused, and the refusal's command works.

Each test trains a one-epoch `--lr_schedule=cosine` run, asks for one more
epoch with `--extend` (refused in one line), then runs the command the
refusal gives, its flags parsed as the command line would parse them.
"""

import os
import re
from unittest import mock

import pytest
from absl import app
from absl import flags
from absl.testing import flagsaver

from la_keras.runs import finetuning
from la_keras.runs.resolved import ResolvedConfig
from launch import train
from tests.launch import helpers
from tests.launch import test_finetune_runs
from tests.test_case import TestCase

FLAGS = flags.FLAGS


def setUpModule():
    helpers.define_all_flags()


def _train(values, **hint):
    """launch.train with flag `values`, and `hint` flags parsed from text."""
    with flagsaver.flagsaver(**values), flagsaver.as_parsed(**hint):
        return train.run(FLAGS)


# Slow (28 s: four runs). The default suite checks the refusal and the
# command it gives, for a run from scratch and a pretrained one
# (test_resume_check.py CosineExtendTest), and trains from another run's
# weights with --init_from (test_finetune_runs.py FinetuneRunTest).
@pytest.mark.slow
class CosineExtendRunTest(TestCase):
    def _refused_hint(self, values) -> dict:
        """Trains `values` for 1 epoch, asks for 2 with --extend; returns the
        flags that the one-line refusal says to run."""
        self.first = _train(dict(values, epochs=1))
        with self.assertRaises(app.UsageError) as caught:
            _train(dict(values, epochs=2, extend=True))
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        self.assertIn(
            "--extend cannot grow a --lr_schedule=cosine run: its learning "
            "rate reached 0 at epoch 1",
            message,
        )
        command = re.search(r": ((?:--\w+=\S+ )*--\w+=\S+)\.$", message)
        self.assertIsNotNone(command, message)
        return dict(
            flag[2:].split("=", 1) for flag in command.group(1).split(" ")
        )

    def test_a_pretrained_run_goes_on_from_its_backbone(self):
        root = self.get_temp_dir()
        weights = test_finetune_runs.pretrained_file(root)
        model_dir = os.path.join(root, "cosine")
        values = test_finetune_runs._flags(weights, model_dir)
        hint = self._refused_hint(values)
        new_dir = f"{model_dir}_extended"
        self.assertEqual(
            hint,
            {
                "init_from": model_dir,
                "model_dir": new_dir,
                "tb_log_dir": f"{new_dir}/log",
                "epochs": "1",
            },
        )
        logged = []
        with mock.patch.object(
            finetuning.logging, "info", lambda fmt, *a: logged.append(fmt % a)
        ):
            metrics = _train(dict(values, extend=True), **hint)
        step = self.first["step"]
        self.assertEqual((metrics["epoch"], metrics["step"]), (1, step))
        config = ResolvedConfig.read(new_dir)
        self.assertEqual(config.init_from, model_dir)
        self.assertEqual(config.schedule.lr_schedule, "cosine")
        # It started from the first run's trained backbone.
        newest = os.path.join(model_dir, "checkpoints", f"ckpt-{step}")
        self.assertIn(f"Started the backbone from {newest}.", logged)
        self.assertTrue(os.path.isdir(os.path.join(new_dir, "log")))

    def test_a_run_from_scratch_starts_over(self):
        model_dir = os.path.join(self.get_temp_dir(), "scratch")
        values = dict(
            helpers.SMOKE_FLAGS,
            model_dir=model_dir,
            tb_log_dir=os.path.join(model_dir, "log"),
            lr_schedule="cosine",
            warmup_epochs=None,
        )
        hint = self._refused_hint(values)
        new_dir = f"{model_dir}_extended"
        self.assertEqual(
            hint,
            {
                "model_dir": new_dir,
                "tb_log_dir": f"{new_dir}/log",
                "epochs": "2",
            },
        )
        metrics = _train(dict(values, extend=True), **hint)
        self.assertEqual((metrics["epoch"], metrics["step"]), (2, 18))
