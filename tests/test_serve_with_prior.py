"""Tests of the `serve_with_prior` signature and a baked-in target prior.

Every served output is compared with `la_keras.adjustment.retarget`'s rule
in float64 numpy, on the float32 raw logits of the network.
"""

import os

import numpy as np
import tensorflow as tf

from la_keras import serving
from tests import serving_session
from tests import test_serving

TRAIN = np.array([0.6, 0.3, 0.08, 0.02])
EPS = 1e-12


def _reference(raw, target, mode, tau, train=TRAIN):
    """The retarget rule in float64: `[C]` or `[batch, C]` targets."""
    target = np.asarray(target, np.float64)
    target = target / target.sum(axis=-1, keepdims=True)
    logits = np.asarray(raw, np.float64) + np.log(target + EPS)
    if mode != "loss":
        train = np.asarray(train, np.float64) / np.sum(train)
        logits = logits - np.log(train**tau + EPS)
    return logits


def _softmax(logits):
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


class ServeWithPriorTest(test_serving.TinyModelTestCase):
    def setUp(self):
        super().setUp()
        self.prior = self.rng.uniform(0.05, 1.0, 4).astype(np.float32)
        self.priors = self.rng.uniform(0.0, 1.0, (16, 4)).astype(np.float32)

    def _export(self, name, **kwargs):
        export_dir = os.path.join(self.get_temp_dir(), name)
        serving.export_saved_model(
            self.model, export_dir, (32, 32, 3), "cifar", **kwargs
        )
        return export_dir

    def _serve(self, export_dir, prior):
        loaded = tf.saved_model.load(export_dir)
        serve = loaded.signatures[serving.PRIOR_SIGNATURE]
        return serve(images=tf.constant(self.images), prior=tf.constant(prior))

    def _assert_outputs(self, out, expected):
        self.assertAllClose(out["raw_logits"], self.raw, atol=1e-6)
        self.assertAllClose(out["logits"], expected, atol=1e-5)
        self.assertAllClose(out["probabilities"], _softmax(expected), atol=1e-6)
        self.assertAllEqual(out["classes"], np.argmax(expected, axis=-1))

    def test_uniform_prior_equals_serving_default(self):
        export_dir = self._export("posthoc", priors=TRAIN, tau=1.0)
        default = tf.saved_model.load(export_dir).signatures[serving.SIGNATURE](
            images=tf.constant(self.images)
        )
        out = self._serve(export_dir, np.full([4], 0.25, np.float32))
        for key in ("raw_logits", "probabilities", "classes"):
            self.assertAllClose(out[key], default[key], atol=1e-6)
        # retarget's uniform rule is the balanced one up to log(1/C + eps).
        self.assertAllClose(
            out["logits"], default["logits"] + np.log(0.25), atol=1e-5
        )

    def test_random_prior_matches_float64_in_each_mode(self):
        exports = {
            "posthoc": dict(priors=TRAIN, tau=0.7),
            "loss": dict(mode="loss"),
            # A baseline serves raw logits by default; a prior applies the
            # post-hoc rule with the run's tau.
            "baseline": dict(mode="baseline", train_prior=TRAIN, prior_tau=1.0),
        }
        taus = {"posthoc": 0.7, "loss": None, "baseline": 1.0}
        for mode, kwargs in exports.items():
            export_dir = self._export(mode, **kwargs)
            for prior in (self.prior, self.priors):
                self._assert_outputs(
                    self._serve(export_dir, prior),
                    _reference(self.raw, prior, mode, taus[mode]),
                )
            # The default signature is as before: the raw logits.
            if mode != "posthoc":
                default = tf.saved_model.load(export_dir).signatures[
                    serving.SIGNATURE
                ](images=tf.constant(self.images))
                self.assertAllClose(default["logits"], self.raw, atol=1e-6)

    def test_baked_target_prior(self):
        export_dir = self._export(
            "baked", priors=TRAIN, tau=1.0, target_prior=self.prior
        )
        loaded = tf.saved_model.load(export_dir)
        default = loaded.signatures[serving.SIGNATURE](
            images=tf.constant(self.images)
        )
        self._assert_outputs(
            default, _reference(self.raw, self.prior, "posthoc", 1.0)
        )
        self.assertAllClose(
            loaded.target_prior.numpy(), self.prior / self.prior.sum()
        )
        # The training prior at tau 1 gives back the raw logits' argmax.
        train_dir = self._export(
            "train", priors=TRAIN, tau=1.0, target_prior=TRAIN
        )
        out = tf.saved_model.load(train_dir).signatures[serving.SIGNATURE](
            images=tf.constant(self.images)
        )
        self.assertAllClose(out["logits"], self.raw, atol=1e-5)

    def test_bad_priors_refused(self):
        export_dir = self._export("bad", priors=TRAIN, tau=1.0)
        bad = {
            "length": np.ones([3], np.float32),
            "rank3": np.ones([1, 1, 4], np.float32),
            "batch": np.ones([2, 4], np.float32),
            "negative": np.array([0.5, 0.5, 0.5, -0.1], np.float32),
            "zero_sum": np.zeros([4], np.float32),
            "nan": np.array([0.5, np.nan, 0.5, 0.5], np.float32),
        }
        for name, prior in bad.items():
            with self.assertRaisesRegex(
                tf.errors.InvalidArgumentError, "`prior` must", msg=name
            ):
                self._serve(export_dir, prior)
        with self.assertRaisesRegex(
            (tf.errors.InvalidArgumentError, TypeError, ValueError), "float"
        ):
            self._serve(export_dir, np.ones([4], np.float64))

    def test_export_arguments(self):
        with self.assertRaisesRegex(ValueError, "`target_prior`: 2 classes"):
            self._export("a", priors=TRAIN, tau=1.0, target_prior=[1, 1])
        with self.assertRaisesRegex(ValueError, "`mode`"):
            self._export("b", mode="post-hoc")
        with self.assertRaisesRegex(ValueError, "target_prior"):
            self._export("c", target_prior=[1, -1, 1, 1])

    def test_served_like_tf_serving(self):
        """In a TF1 session, as TF Serving and saved_model_cli restore it."""
        export_dir = self._export("session", priors=TRAIN, tau=0.7)
        served, refused = serving_session.run_with_prior_in_session(
            export_dir,
            self.images,
            {
                "one": self.prior,
                "per_example": self.priors,
                "length": np.ones([5], np.float32),
                "negative": -self.prior,
                "zero_sum": np.zeros([4], np.float32),
            },
        )
        self.assertEqual(set(served), {"one", "per_example"})
        self._assert_outputs(
            served["one"], _reference(self.raw, self.prior, "posthoc", 0.7)
        )
        self._assert_outputs(
            served["per_example"],
            _reference(self.raw, self.priors, "posthoc", 0.7),
        )
        self.assertIn("`prior` must be float32 of shape [4]", refused["length"])
        for name in ("negative", "zero_sum"):
            self.assertIn("counts >= 0 with a positive sum", refused[name])
