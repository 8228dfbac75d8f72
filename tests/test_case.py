"""Shared test helpers, in the manner of KerasHub's TestCase."""

import os

import keras
import numpy as np
import tensorflow as tf


class TestCase(tf.test.TestCase):
    """Base class for la_keras tests."""

    # tf.test.TestCase.test_session is a context manager, not a test.
    test_session = None

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(1337)

    def run_serialization_test(self, instance):
        """Checks a `get_config` / `from_config` round trip, also via JSON."""
        config = instance.get_config()
        revived = instance.__class__.from_config(config)
        self.assertEqual(config, revived.get_config())
        serialized = keras.saving.serialize_keras_object(instance)
        revived = keras.saving.deserialize_keras_object(serialized)
        self.assertIsInstance(revived, instance.__class__)
        self.assertEqual(config, revived.get_config())
        return revived

    def run_model_saving_test(self, model, inputs, atol=1e-6):
        """Saves `model` to `.keras`, loads it without custom_objects."""
        path = os.path.join(self.get_temp_dir(), "model.keras")
        expected = keras.ops.convert_to_numpy(model(inputs, training=False))
        model.save(path)
        restored = keras.models.load_model(path)
        actual = keras.ops.convert_to_numpy(restored(inputs, training=False))
        np.testing.assert_allclose(actual, expected, atol=atol)
        return restored
