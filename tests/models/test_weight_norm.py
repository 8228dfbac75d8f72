import keras
import numpy as np
import tensorflow as tf

from la_keras.models.weight_norm import sweep_weight_norm_tau
from la_keras.models.weight_norm import tau_normalize
from la_keras.models.weight_norm import tau_normalized_kernel
from tests.test_case import TestCase


def small_model(use_bias=True, classes=5, functional=False):
    if functional:
        inputs = keras.Input((6,))
        hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
        hidden = keras.layers.BatchNormalization(name="bn")(hidden)
        logits = keras.layers.Dense(classes, use_bias=use_bias, name="head")(
            hidden
        )
        model = keras.Model(inputs, logits)
    else:
        model = keras.Sequential(
            [
                keras.Input((6,)),
                keras.layers.Dense(8, activation="relu", name="hidden"),
                keras.layers.Dense(classes, use_bias=use_bias, name="head"),
            ]
        )
    # Distinct column norms, as after long-tailed training.
    head = model.get_layer("head")
    kernel = head.kernel.numpy() * np.linspace(0.2, 3.0, classes)[None, :]
    head.kernel.assign(kernel)
    if use_bias:
        head.bias.assign(np.linspace(-1.0, 1.0, classes))
    return model


def features_of(model, x):
    return keras.Model(model.inputs[0], model.get_layer("head").input)(
        x
    ).numpy()


def reference_logits(model, x, tau):
    """float64: features @ (w_y / ||w_y||^tau), no bias."""
    kernel = model.get_layer("head").kernel.numpy().astype(np.float64)
    kernel = kernel / np.linalg.norm(kernel, axis=0, keepdims=True) ** tau
    return features_of(model, x).astype(np.float64) @ kernel


class TauNormalizeTest(TestCase):
    def test_matches_numpy_reference(self):
        x = np.random.default_rng(0).normal(size=(16, 6)).astype(np.float32)
        for functional in (False, True):
            model = small_model(functional=functional)
            for tau in (0.0, 0.5, 1.0, 2.0):
                normalized = tau_normalize(model, tau)
                self.assertAllClose(
                    normalized(x, training=False),
                    reference_logits(model, x, tau),
                    rtol=1e-5,
                    atol=1e-5,
                )

    def test_tau_one_gives_unit_norm_columns(self):
        normalized = tau_normalize(small_model(), 1.0)
        norms = np.linalg.norm(
            normalized.get_layer("head").kernel.numpy(), axis=0
        )
        self.assertAllClose(norms, np.ones(5), atol=1e-6)

    def test_tau_zero_without_bias_leaves_logits_unchanged(self):
        x = np.random.default_rng(1).normal(size=(8, 6)).astype(np.float32)
        model = small_model(use_bias=False, functional=True)
        self.assertAllClose(tau_normalize(model, 0.0)(x), model(x), atol=1e-6)

    def test_bias_is_dropped(self):
        x = np.random.default_rng(2).normal(size=(8, 6)).astype(np.float32)
        model = small_model(use_bias=True)
        normalized = tau_normalize(model, 0.0)
        self.assertFalse(normalized.get_layer("head").use_bias)
        bias = model.get_layer("head").bias.numpy()
        self.assertAllClose(normalized(x), model(x) - bias, atol=1e-5)

    def test_copy_is_independent(self):
        x = np.random.default_rng(3).normal(size=(4, 6)).astype(np.float32)
        model = small_model()
        before = model(x).numpy()
        normalized = tau_normalize(model, 1.0)
        self.assertAllClose(model(x), before)
        copy_before = normalized(x).numpy()
        hidden = model.get_layer("hidden")
        hidden.kernel.assign(hidden.kernel.numpy() * 2.0)
        self.assertAllClose(normalized(x), copy_before)

    def test_layer_name_and_zero_columns(self):
        model = small_model()
        normalized = tau_normalize(model, 1.0, layer_name="hidden")
        norms = np.linalg.norm(
            normalized.get_layer("hidden").kernel.numpy(), axis=0
        )
        self.assertAllClose(norms, np.ones(8), atol=1e-6)
        self.assertTrue(normalized.get_layer("head").use_bias)
        kernel = np.array([[3.0, 0.0], [4.0, 0.0]], np.float32)
        self.assertAllClose(
            tau_normalized_kernel(kernel, 1.0), [[0.6, 0.0], [0.8, 0.0]]
        )

    def test_saving(self):
        x = np.random.default_rng(4).normal(size=(4, 6)).astype(np.float32)
        self.run_model_saving_test(tau_normalize(small_model(), 1.0), x)

    def test_bad_arguments(self):
        model = small_model()
        with self.assertRaisesRegex(ValueError, "`tau`"):
            tau_normalize(model, -1.0)
        with self.assertRaisesRegex(ValueError, "`layer_name`"):
            tau_normalize(model, 1.0, layer_name="nope")
        no_dense = keras.Sequential([keras.Input((3,)), keras.layers.ReLU()])
        with self.assertRaisesRegex(ValueError, "Dense classifier"):
            tau_normalize(no_dense, 1.0)
        relu_model = keras.Sequential(
            [
                keras.Input((3,)),
                keras.layers.Dense(2),
                keras.layers.ReLU(name="r"),
            ]
        )
        with self.assertRaisesRegex(ValueError, "Expected a Dense layer"):
            tau_normalize(relu_model, 1.0, layer_name="r")


class SweepTauTest(TestCase):
    def test_scores_and_best_tau(self):
        rng = np.random.default_rng(5)
        model = small_model(functional=True)
        x = rng.normal(size=(64, 6)).astype(np.float32)
        y = rng.integers(0, 5, 64)
        taus = [0.0, 0.5, 1.0, 1.5, 2.0]

        def tail_score(labels, logits):
            # Mean logit of the smallest-norm class: grows with tau.
            del labels
            return float(logits[:, 0].mean() - logits[:, 4].mean())

        dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
        best, scores = sweep_weight_norm_tau(model, dataset, taus, tail_score)
        for tau in taus:
            expected = tail_score(y, reference_logits(model, x, tau))
            self.assertAllClose(scores[tau], expected, rtol=1e-4, atol=1e-4)
        self.assertEqual(best, max(taus, key=lambda t: scores[t]))
        # The same with one (features, labels) tuple of arrays.
        best_arrays, scores_arrays = sweep_weight_norm_tau(
            model, (x, y), taus, tail_score
        )
        self.assertEqual(best_arrays, best)
        self.assertAllClose(
            [scores_arrays[t] for t in taus],
            [scores[t] for t in taus],
            rtol=1e-5,
        )

    def test_accuracy_metric_and_ties(self):
        model = small_model()
        x = np.zeros((4, 6), np.float32)
        y = np.zeros(4, int)
        best, scores = sweep_weight_norm_tau(
            model, (x, y), [1.0, 0.0, 1.0], lambda a, b: 0.5
        )
        self.assertEqual(best, 1.0)
        self.assertEqual(scores, {1.0: 0.5, 0.0: 0.5})
        with self.assertRaisesRegex(ValueError, "`taus`"):
            sweep_weight_norm_tau(model, (x, y), [], lambda a, b: 0.0)
