"""`launch.export --target_prior` and `serve_with_prior` of a post-hoc run.

Served logits are compared with `la_keras.adjustment.retarget`'s rule in
float64 numpy, on the float32 raw logits of the restored network.
"""

import json
import os

import numpy as np
import tensorflow as tf
from absl import app
from absl import flags
from absl.testing import flagsaver

from la_keras import serving
from la_keras.runs import run_state
from la_keras.runs.resolved import ResolvedConfig
from launch import export
from tests import serving_session
from tests.launch import helpers
from tests.launch import shared_runs
from tests.test_case import TestCase

FLAGS = flags.FLAGS
EPS = 1e-12


def setUpModule():
    helpers.define_all_flags()


def _retarget(raw, train, target, tau):
    target = np.asarray(target, np.float64)
    target = target / target.sum(axis=-1, keepdims=True)
    train = np.asarray(train, np.float64) / np.sum(train)
    return raw - np.log(train**tau + EPS) + np.log(target + EPS)


class TargetPriorExportTest(TestCase):
    """The shared post-hoc smoke run, exported with each kind of
    --target_prior (to folders of the tests' own)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helpers.define_all_flags()
        cls.model_dir, cls.metrics, _ = shared_runs.posthoc_run()
        model, info, _ = run_state.restore_model(
            ResolvedConfig.read(cls.model_dir)
        )
        cls.train_prior = np.asarray(info.priors, np.float64)
        cls.num_classes = len(info.priors)
        rng = np.random.default_rng(0)
        cls.images = rng.integers(0, 256, (8, 32, 32, 3)).astype(np.uint8)
        cls.raw = serving_session.expected_outputs(model, cls.images, "cifar")[
            "raw_logits"
        ]

    def _export(self, name, **overrides):
        export_dir = os.path.join(self.get_temp_dir(), name)
        with flagsaver.flagsaver(
            model_dir=self.model_dir, export_dir=export_dir, **overrides
        ):
            export.run(FLAGS)
        return tf.saved_model.load(export_dir)

    def _serve(self, loaded, prior=None):
        images = tf.constant(self.images)
        if prior is None:
            return loaded.signatures[serving.SIGNATURE](images=images)
        return loaded.signatures[serving.PRIOR_SIGNATURE](
            images=images, prior=tf.constant(prior, tf.float32)
        )

    def _write(self, name, text):
        path = os.path.join(self.get_temp_dir(), name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_train_prior_serves_the_cross_entropy_argmax(self):
        loaded = self._export("train", target_prior="train", tau=1.0)
        out = self._serve(loaded)
        self.assertAllClose(out["logits"], self.raw, atol=1e-5)
        self.assertAllEqual(out["classes"], np.argmax(self.raw, axis=-1))
        self.assertAllClose(loaded.target_prior.numpy(), self.train_prior)

    def test_serve_with_prior_of_the_default_export(self):
        loaded = self._export("default")
        tau = float(loaded.tau.numpy())
        self.assertEqual(tau, np.float32(self.metrics["served_tau"]))
        default = self._serve(loaded)
        uniform = np.full([self.num_classes], 1.0 / self.num_classes)
        out = self._serve(loaded, uniform)
        for key in ("raw_logits", "probabilities", "classes"):
            self.assertAllClose(out[key], default[key], atol=1e-6)
        self.assertAllClose(
            out["logits"], default["logits"] + np.log(uniform), atol=1e-5
        )
        prior = np.random.default_rng(1).uniform(0, 1, self.num_classes)
        expected = _retarget(self.raw, self.train_prior, prior, tau)
        out = self._serve(loaded, prior)
        self.assertAllClose(out["logits"], expected, atol=1e-5)
        self.assertAllEqual(out["classes"], np.argmax(expected, axis=-1))
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "`prior` must be float32"
        ):
            self._serve(loaded, np.ones([self.num_classes + 1]))

    def test_prior_files(self):
        counts = np.arange(1, self.num_classes + 1, dtype=np.float64)
        paths = {
            "json": self._write("prior.json", json.dumps(counts.tolist())),
            "lines": self._write("prior.txt", "\n".join(map(str, counts))),
        }
        for name, path in paths.items():
            loaded = self._export(name, target_prior=path, tau=0.5)
            self.assertAllClose(
                loaded.target_prior.numpy(), counts / counts.sum()
            )
            expected = _retarget(self.raw, self.train_prior, counts, 0.5)
            self.assertAllClose(
                self._serve(loaded)["logits"], expected, atol=1e-5, msg=name
            )

    def test_bad_target_prior_refused(self):
        n = self.num_classes
        cases = {
            "short": ([1.0] * (n - 1), f"{n - 1} numbers, but the run has"),
            "negative": ([1.0] * (n - 1) + [-1.0], "-1 is not a finite"),
            "zero_sum": ([0.0] * n, "sum to 0"),
            "word": (["a"] + [1.0] * (n - 1), "'a' is not a number"),
        }
        for name, (values, message) in cases.items():
            path = self._write(f"{name}.json", json.dumps(values))
            with self.assertRaisesRegex(app.UsageError, message, msg=name):
                self._export(name, target_prior=path)
        with self.assertRaisesRegex(app.UsageError, "no such file"):
            self._export("missing", target_prior="/nonexistent/prior.txt")
        # From the command line: one line, exit status 1, nothing written.
        path = self._write("text.txt", "1 2 x")
        helpers.assert_export_refused(
            self, self.model_dir, f"--target_prior={path}",
            f"--target_prior={path}: 'x' is not a number; expected one class "
            "probability or count per class.",
        )  # fmt: skip
