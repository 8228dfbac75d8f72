import keras
import numpy as np

from la_keras.layers import LogitAdjustment
from tests.test_case import TestCase

COUNTS = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def reference(logits, counts, tau, epsilon=1e-12):
    p = np.asarray(counts, np.float64) / np.sum(counts)
    return np.asarray(logits, np.float64) - np.log(p**tau + epsilon)


class LogitAdjustmentTest(TestCase):
    def test_matches_reference(self):
        logits = np.random.default_rng(0).normal(size=(8, 10)).astype("float32")
        for tau in (0.0, 0.5, 1.0, 2.0):
            layer = LogitAdjustment(COUNTS, tau=tau)
            self.assertAllClose(
                layer(logits), reference(logits, COUNTS, tau), rtol=1e-5
            )

    def test_tau_zero_is_identity(self):
        logits = np.random.default_rng(0).normal(size=(4, 10)).astype("float32")
        self.assertAllClose(LogitAdjustment(COUNTS, tau=0.0)(logits), logits)

    def test_set_tau_after_build(self):
        logits = np.ones((2, 10), "float32")
        layer = LogitAdjustment(COUNTS)
        layer(logits)
        layer.tau = 0.25
        self.assertAllClose(
            layer(logits), reference(logits, COUNTS, 0.25), rtol=1e-5
        )
        self.assertEqual(layer.get_config()["tau"], 0.25)
        with self.assertRaisesRegex(ValueError, "tau"):
            layer.tau = -1

    def test_zero_prior_finite(self):
        layer = LogitAdjustment([1.0, 0.0], tau=1.0)
        out = layer(np.zeros((1, 2), "float32")).numpy()
        self.assertTrue(np.all(np.isfinite(out)))
        self.assertAllClose(out, [[0.0, -np.log(1e-12)]], rtol=1e-5)

    def test_mismatch_raises(self):
        with self.assertRaisesRegex(ValueError, "10 classes but the logits"):
            LogitAdjustment(COUNTS)(np.zeros((1, 3), "float32"))

    def test_functional_model_and_saving(self):
        inputs = keras.Input((6,))
        logits = keras.layers.Dense(10)(inputs)
        outputs = LogitAdjustment(COUNTS, tau=1.5)(logits)
        model = keras.Model(inputs, outputs)
        self.run_serialization_test(model.layers[-1])
        x = np.random.rand(5, 6).astype("float32")
        restored = self.run_model_saving_test(model, x)
        self.assertEqual(restored.layers[-1].tau, 1.5)

    def test_float16_inputs(self):
        layer = LogitAdjustment(COUNTS, dtype="mixed_float16")
        out = layer(np.zeros((2, 10), "float16"))
        self.assertEqual(out.dtype, "float16")
        self.assertAllClose(
            out, reference(np.zeros((2, 10)), COUNTS, 1.0), rtol=1e-3
        )


class TargetPriorTest(TestCase):
    """`target_prior`: the post-hoc rule for another class mix."""

    TARGET = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]

    def test_matches_reference(self):
        logits = np.random.default_rng(1).normal(size=(8, 10)).astype("float32")
        target = np.asarray(self.TARGET, np.float64) / np.sum(self.TARGET)
        for tau in (0.5, 1.0):
            layer = LogitAdjustment(COUNTS, tau=tau, target_prior=self.TARGET)
            expected = reference(logits, COUNTS, tau) + np.log(target + 1e-12)
            self.assertAllClose(layer(logits), expected, atol=1e-5)

    def test_train_target_undoes_tau_one(self):
        logits = np.random.default_rng(2).normal(size=(4, 10)).astype("float32")
        layer = LogitAdjustment(COUNTS, tau=1.0, target_prior=COUNTS)
        self.assertAllClose(layer(logits), logits, atol=1e-5)

    def test_config_round_trip(self):
        layer = LogitAdjustment(COUNTS, tau=0.5, target_prior=self.TARGET)
        revived = self.run_serialization_test(layer)
        self.assertAllClose(revived.target_prior, np.asarray(self.TARGET) / 55)
        self.assertIsNone(LogitAdjustment(COUNTS).get_config()["target_prior"])

    def test_bad_target_prior(self):
        with self.assertRaisesRegex(ValueError, "one entry per class"):
            LogitAdjustment(COUNTS, target_prior=[1, 2])
        with self.assertRaisesRegex(ValueError, "target_prior"):
            LogitAdjustment(COUNTS, target_prior=[-1] + [1] * 9)
