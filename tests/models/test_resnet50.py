"""Tests for the ResNet-50 builder."""

import keras
import numpy as np

from la_keras import models
from tests.test_case import TestCase


class Resnet50Test(TestCase):
    def test_head_and_weight_decay(self):
        model = models.resnet50(7, input_shape=(64, 64, 3), weight_decay=5e-4)
        self.assertEqual(model.output_shape, (None, 7))
        images = np.zeros((1, 64, 64, 3), "float32")
        self.assertEqual(tuple(model(images).shape), (1, 7))
        kernels = [
            layer
            for layer in model.layers
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
        ]
        self.assertLen(kernels, 54)  # 53 convolutions + the logits layer
        self.assertLen(model.losses, 54)
        self.assertAllClose(
            model.get_layer("logits").kernel_regularizer.l2, 5e-4
        )
        # ResNet-50 backbone (23.5M) + 2048 x 7 head.
        self.assertEqual(model.count_params(), 23587712 + 2048 * 7 + 7)

    def test_no_weight_decay(self):
        model = models.resnet50(3, input_shape=(32, 32, 3), weight_decay=0.0)
        self.assertEmpty(model.losses)

    def test_invalid_num_classes(self):
        with self.assertRaisesRegex(ValueError, "num_classes"):
            models.resnet50(0)
