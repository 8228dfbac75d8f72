"""Tests for the CIFAR ResNets."""

import keras
import numpy as np

from la_keras import models
from tests.test_case import TestCase


def _convs(model):
    return [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D)
    ]


class OfficialResnet32Test(TestCase):
    def setUp(self):
        super().setUp()
        self.model = models.official_resnet32(10)

    def test_structure_matches_official_release(self):
        model = self.model
        convs = _convs(model)
        # Stem + 15 blocks x 3 convs + 3 projection shortcuts.
        self.assertLen(convs, 1 + 15 * 3 + 3)
        self.assertTrue(all(not c.use_bias for c in convs))
        self.assertTrue(
            all(
                isinstance(c.kernel_initializer, keras.initializers.HeNormal)
                for c in convs
            )
        )
        stem = model.get_layer("conv1")
        self.assertEqual(stem.padding, "valid")
        self.assertEqual(stem.kernel_size, (3, 3))
        self.assertEqual(stem.filters, 16)
        self.assertEqual(model.get_layer("conv1_pad").padding, ((3, 3), (3, 3)))
        for stage, (filters, stride) in zip(
            (2, 3, 4), ((16, 1), (32, 2), (64, 2)), strict=True
        ):
            for branch, kernel in (("2a", 1), ("2b", 3), ("2c", 1)):
                for block in "abcde":
                    layer = model.get_layer(f"res{stage}{block}_branch{branch}")
                    self.assertEqual(layer.filters, filters)
                    self.assertEqual(layer.kernel_size, (kernel, kernel))
            self.assertEqual(
                model.get_layer(f"res{stage}a_branch2b").strides,
                (stride, stride),
            )
            self.assertEqual(
                model.get_layer(f"res{stage}a_branch1").strides,
                (stride, stride),
            )
            with self.assertRaises(ValueError):
                model.get_layer(f"res{stage}b_branch1")
        bns = [
            layer
            for layer in model.layers
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        self.assertLen(bns, len(convs) + 1)  # one per conv + final_bn
        for bn in bns:
            self.assertAllClose(bn.momentum, 0.9)
            self.assertAllClose(bn.epsilon, 1e-5)
        # final_bn comes right before the pooling.
        names = [layer.name for layer in model.layers]
        self.assertEqual(names[names.index("reduce_mean") - 1], "final_bn")
        dense = model.get_layer("fc10")
        self.assertIsInstance(
            dense.kernel_initializer, keras.initializers.RandomNormal
        )
        self.assertAllClose(dense.kernel_initializer.stddev, 0.01)

    def test_l2_on_kernels_and_dense_bias(self):
        model = self.model
        # 49 conv kernels + dense kernel + dense bias.
        self.assertLen(model.losses, 51)
        for layer in _convs(model):
            self.assertAllClose(layer.kernel_regularizer.l2, 1e-4)
        dense = model.get_layer("fc10")
        self.assertAllClose(dense.bias_regularizer.l2, 1e-4)
        expected = sum(
            1e-4 * np.sum(np.square(w.numpy()))
            for w in model.trainable_weights
            if "kernel" in w.path or w.path.endswith("fc10/bias")
        )
        self.assertAllClose(
            float(keras.ops.sum(model.losses)), expected, rtol=1e-4
        )

    def test_output_shape_and_params(self):
        images = (
            np.random.default_rng(0)
            .normal(size=(2, 32, 32, 3))
            .astype("float32")
        )
        self.assertEqual(tuple(self.model(images).shape), (2, 10))
        # Spatial sizes: 38 padded -> 36 stem -> 36 / 18 / 9.
        self.assertEqual(
            self.model.get_layer("final_bn").output.shape[1:3], (9, 9)
        )
        self.assertEqual(self.model.count_params(), 304506)

    def test_no_weight_decay(self):
        model = models.official_resnet32(100, weight_decay=0.0)
        self.assertEmpty(model.losses)
        self.assertEqual(model.output_shape, (None, 100))


class ClassicResnetTest(TestCase):
    def test_resnet32_is_he_et_al(self):
        model = models.resnet32(10)
        convs = _convs(model)
        # 1 stem + 30 block convs (+ 2 projections, not counted in depth).
        three = [c for c in convs if c.kernel_size == (3, 3)]
        self.assertLen(three, 31)
        self.assertLen(convs, 33)
        self.assertEqual(model.count_params(), 469370)  # ~0.46M, as He et al.
        self.assertEqual(model.output_shape, (None, 10))

    def test_depths(self):
        for depth, blocks in ((8, 1), (20, 3)):
            model = models.cifar_resnet(depth, 5)
            three = [c for c in _convs(model) if c.kernel_size == (3, 3)]
            self.assertLen(three, 1 + 3 * blocks * 2)
        with self.assertRaisesRegex(ValueError, "6n \\+ 2"):
            models.cifar_resnet(10, 5)

    def test_invalid_num_classes(self):
        with self.assertRaisesRegex(ValueError, "num_classes"):
            models.resnet32(0)

    def test_saving(self):
        model = models.cifar_resnet(8, 3)
        images = (
            np.random.default_rng(0)
            .normal(size=(2, 32, 32, 3))
            .astype("float32")
        )
        self.run_model_saving_test(model, images, atol=1e-5)
