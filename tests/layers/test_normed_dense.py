import keras
import numpy as np

from la_keras.layers import NormedDense
from la_keras.models import registry
from tests.test_case import TestCase


def reference(features, kernel):
    """Cao et al.'s NormedLinear in float64: F.normalize(x) @ F.normalize(W)."""
    x = np.asarray(features, np.float64)
    w = np.asarray(kernel, np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    w = w / np.maximum(np.linalg.norm(w, axis=0, keepdims=True), 1e-12)
    return x @ w


class NormedDenseTest(TestCase):
    def test_matches_reference(self):
        rng = np.random.default_rng(0)
        features = rng.normal(size=(8, 16)).astype("float32") * 7.0
        layer = NormedDense(5)
        out = keras.ops.convert_to_numpy(layer(features))
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        self.assertEqual(out.shape, (8, 5))
        self.assertAllClose(out, reference(features, kernel), rtol=1e-5)
        # Cosines: within [-1, 1], independent of the features' scale.
        self.assertLessEqual(np.abs(out).max(), 1.0 + 1e-6)
        self.assertAllClose(
            keras.ops.convert_to_numpy(layer(features / 7.0)), out, rtol=1e-5
        )

    def test_scale_multiplies_the_cosines(self):
        rng = np.random.default_rng(1)
        features = rng.normal(size=(6, 8)).astype("float32")
        layer = NormedDense(4, scale=25.0)
        out = keras.ops.convert_to_numpy(layer(features))
        kernel = keras.ops.convert_to_numpy(layer.kernel)
        self.assertAllClose(out, 25.0 * reference(features, kernel), rtol=1e-5)
        self.assertEqual(NormedDense.from_config(layer.get_config()).scale, 25)
        for bad in (0.0, -2.0, float("nan"), float("inf")):
            with self.assertRaisesRegex(ValueError, "`scale`"):
                NormedDense(4, scale=bad)

    def test_zero_features_stay_finite(self):
        layer = NormedDense(3)
        out = keras.ops.convert_to_numpy(layer(np.zeros((2, 4), "float32")))
        self.assertAllClose(out, np.zeros((2, 3)))

    def test_regularizer_counts(self):
        layer = NormedDense(3, kernel_regularizer=keras.regularizers.L2(0.1))
        layer(np.ones((1, 4), "float32"))
        self.assertLen(layer.losses, 1)

    def test_bad_units(self):
        for units in (0, -1, 2.5, True):
            with self.assertRaisesRegex(ValueError, "`units`"):
                NormedDense(units)

    def test_serialization_and_saving(self):
        inputs = keras.Input((6,))
        outputs = NormedDense(
            4, kernel_regularizer=keras.regularizers.L2(1e-4)
        )(inputs)
        model = keras.Model(inputs, outputs)
        self.run_serialization_test(model.layers[-1])
        x = np.random.rand(5, 6).astype("float32")
        self.run_model_saving_test(model, x)


class ClassifierHeadTest(TestCase):
    def test_registry_models_take_either_head(self):
        for name in ("official_resnet32", "resnet8", "resnet50"):
            shape = (64, 64, 3) if name == "resnet50" else (32, 32, 3)
            dense = registry.build(name, 10, shape, 1e-4)
            normed = registry.build(name, 10, shape, 1e-4, "normed")
            self.assertIsInstance(dense.layers[-1], keras.layers.Dense)
            self.assertIsInstance(normed.layers[-1], NormedDense)
            # The normed head carries the weight decay, as Cao et al.'s.
            self.assertLen(normed.layers[-1].losses, 1)
            x = np.random.default_rng(1).random((2, *shape), "float32")
            cosines = keras.ops.convert_to_numpy(normed(x))
            self.assertLessEqual(np.abs(cosines).max(), 1.0 + 1e-6)

    def test_unknown_head(self):
        with self.assertRaisesRegex(ValueError, "`classifier`.*arcface"):
            registry.build("resnet8", 10, (32, 32, 3), 1e-4, "arcface")
