"""launch.export and launch.evaluate read a run at its newest state.

A JAX-backend run writes `model.keras` when it ends; a later `--extend`
stopped by SIGTERM leaves newer `.npz` checkpoints beside it. The fast
tests lay out such a model_dir in-process (model.keras of step 9 as
`la_keras.runs.train_jax` writes it, `.npz` checkpoints as `ArrayCheckpointStore`
writes them); the slow one trains, extends and stops a JAX run for real.
"""

import json
import os
import re
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from la_keras.models import LogitAdjustedModel
from la_keras.runs import finetuning
from la_keras.runs import outputs
from la_keras.runs import run_export
from la_keras.runs import run_state
from la_keras.runs.resolved import ResolvedConfig
from la_keras.training import ArrayCheckpointStore
from la_keras.training.loop import checkpoint_dir
from la_keras.training.preemption import PREEMPTED_EXIT_CODE
from launch import evaluate
from launch import export
from tests import serving_session
from tests.launch import helpers
from tests.test_case import TestCase

FLAGS = flags.FLAGS
_JAX = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}
_IMAGES = (
    np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3)).astype(np.uint8)
)


def setUpModule():
    helpers.define_all_flags()


def _served_raw_logits(export_dir):
    serve = tf.saved_model.load(export_dir).signatures["serving_default"]
    return serve(images=tf.constant(_IMAGES))["raw_logits"].numpy()


def _assert_serves(export_dir, raw_logits):
    """`export_dir` serves `raw_logits` on `_IMAGES`, up to float32."""
    np.testing.assert_allclose(
        _served_raw_logits(export_dir), raw_logits, rtol=1e-4, atol=1e-4
    )


def _raw_logits(model):
    return serving_session.expected_outputs(model, _IMAGES, "cifar")[
        "raw_logits"
    ]


class NewestStateTest(TestCase):
    """model.keras of step 9; checkpoints of steps 9 and 12."""

    def setUp(self):
        super().setUp()
        self.model_dir = os.path.join(self.get_temp_dir(), "run")
        values = dict(helpers.SMOKE_FLAGS, model_dir=self.model_dir, epochs=1)
        with flagsaver.flagsaver(**values):
            config = ResolvedConfig.from_flags(FLAGS)
        os.makedirs(self.model_dir)
        config.write(self.model_dir)
        self.config = ResolvedConfig.read(self.model_dir)
        info = self.config.data.info()
        model = finetuning.build_model(self.config, info)
        self.keras_path = os.path.join(self.model_dir, outputs.KERAS_MODEL)
        LogitAdjustedModel(model, info.priors, tau=1.0).save(self.keras_path)
        self._write_metrics(step=9)
        self.keras_logits = _raw_logits(model)
        store = ArrayCheckpointStore(
            checkpoint_dir(self.model_dir), model=model.variables
        )
        store.save(9)
        rng = np.random.default_rng(1)
        for variable in model.trainable_variables:
            shape = tuple(variable.shape)
            variable.assign(variable.numpy() + rng.normal(0, 0.5, shape))
        self.newest = store.save(12)
        self.newest_logits = _raw_logits(model)
        self.assertGreater(
            np.abs(self.newest_logits - self.keras_logits).max(), 1e-2
        )

    def _write_metrics(self, step):
        metrics = dict(step=step, keras_model=self.keras_path, served_tau=1.0)
        outputs.write_json(
            os.path.join(self.model_dir, "metrics.json"), metrics
        )

    def _export(self, export_dir):
        """Runs launch.export; returns its INFO log lines."""
        logged = []

        def info(fmt, *args):
            logged.append(fmt % args)

        # absl's verbosity is process-wide and other tests change it: the
        # lines are read from the logging calls themselves.
        with (
            flagsaver.flagsaver(
                model_dir=self.model_dir, export_dir=export_dir
            ),
            mock.patch.object(run_export.logging, "info", info),
            mock.patch.object(run_state.logging, "info", info),
        ):
            export.run(FLAGS)
        return logged

    def test_export_serves_the_newer_checkpoint_and_says_so(self):
        export_dir = os.path.join(self.get_temp_dir(), "export")
        logs = self._export(export_dir)
        self.assertTrue(
            any(
                f"Exported {self.newest} (step 12) to {export_dir}" in line
                for line in logs
            ),
            logs,
        )
        self.assertTrue(
            any("model.keras (step 9) is older" in line for line in logs),
            logs,
        )
        restored, _, _ = run_state.restore_model(self.config, self.newest)
        _assert_serves(export_dir, _raw_logits(restored))
        _assert_serves(export_dir, self.newest_logits)

    def test_evaluate_reads_the_same_state(self):
        output = os.path.join(self.get_temp_dir(), "eval.json")
        with flagsaver.flagsaver(model_dir=self.model_dir, output=output):
            report = evaluate.run(FLAGS)
        self.assertEqual(report["source"], self.newest)

    def test_a_newer_model_keras_is_read(self):
        self._write_metrics(step=15)
        state = run_state.newest_state(self.config)
        self.assertEqual((state.path, state.step), (self.keras_path, 15))
        export_dir = os.path.join(self.get_temp_dir(), "export")
        logs = self._export(export_dir)
        self.assertTrue(
            any(f"Exported {self.keras_path} (step 15)" in x for x in logs),
            logs,
        )
        _assert_serves(export_dir, self.keras_logits)

    def test_equal_steps_read_the_checkpoint(self):
        os.remove(self.newest)
        state = run_state.newest_state(self.config)
        self.assertEqual(state.step, 9)
        self.assertTrue(state.path.endswith("ckpt-9.npz"), state.path)

    def test_damaged_newer_checkpoint_falls_back_to_model_keras(self):
        self._write_metrics(step=10)
        with open(self.newest, "r+b") as f:
            f.truncate(os.path.getsize(self.newest) // 2)
        state = run_state.newest_state(self.config)
        self.assertEqual((state.path, state.step), (self.keras_path, 10))

    def test_unknown_model_keras_step_reads_the_checkpoint(self):
        os.remove(os.path.join(self.model_dir, "metrics.json"))
        self.assertEqual(run_state.newest_state(self.config).path, self.newest)

    def test_explicit_checkpoint_wins(self):
        older = os.path.join(checkpoint_dir(self.model_dir), "ckpt-9.npz")
        state = run_state.newest_state(self.config, older)
        self.assertEqual((state.path, state.step), (older, 9))


def _newest_npz(model_dir):
    steps = [
        int(m.group(1))
        for name in os.listdir(checkpoint_dir(model_dir))
        if (m := re.fullmatch(r"ckpt-(\d+)\.npz", name))
    ]
    return max(steps, default=0)


class ExtendedAndStoppedJaxRunTest(TestCase):
    @pytest.mark.slow
    def test_export_serves_the_checkpoint_after_sigterm(self):
        pytest.importorskip("jax")
        model_dir = os.path.join(self.get_temp_dir(), "jax_run")
        first = helpers.run_module(
            "launch.train",
            helpers.smoke_args(model_dir, epochs=1),
            extra_env=_JAX,
        )
        self.assertEqual(first.returncode, 0, first.stderr[-3000:])
        # Extended; stopped by SIGTERM inside the second epoch.
        args = helpers.smoke_args(
            model_dir,
            epochs=6,
            extend=True,
            steps_per_loop=1,
            eval_every_epochs=100,
            checkpoint_every_steps=4,
        )
        log_path = os.path.join(self.get_temp_dir(), "extended.log")
        process = helpers.popen_module("launch.train", args, log_path, _JAX)
        returncode = helpers.stop_when(
            process, lambda: _newest_npz(model_dir) > 9
        )
        with open(log_path) as f:
            self.assertEqual(returncode, PREEMPTED_EXIT_CODE, f.read()[-3000:])
        with open(os.path.join(model_dir, "metrics.json")) as f:
            self.assertEqual(json.load(f)["step"], 9)  # model.keras: step 9
        step = _newest_npz(model_dir)
        self.assertGreater(step, 9)
        newest = os.path.join(checkpoint_dir(model_dir), f"ckpt-{step}.npz")

        export_dir = os.path.join(self.get_temp_dir(), "export")
        exported = helpers.run_module(
            "launch.export",
            [
                "--verbosity=0",
                f"--model_dir={model_dir}",
                f"--export_dir={export_dir}",
            ],
        )
        self.assertEqual(exported.returncode, 0, exported.stderr[-3000:])
        self.assertIn(f"Exported {newest} (step {step})", exported.stderr)
        restored, _, _ = run_state.restore_model(
            ResolvedConfig.read(model_dir), newest
        )
        _assert_serves(export_dir, _raw_logits(restored))
