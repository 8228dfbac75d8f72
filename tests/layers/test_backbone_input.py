"""Tests for `BackboneInput` and the recipes' `pixel_affine`."""

import keras
import numpy as np

from la_keras.datasets.normalization import IMAGENET_MEAN
from la_keras.datasets.normalization import IMAGENET_STD
from la_keras.datasets.normalization import pixel_affine
from la_keras.layers.backbone_input import MODES
from la_keras.layers.backbone_input import BackboneInput
from tests.test_case import TestCase

try:
    import tensorflow as tf
except ImportError:  # a JAX-only install
    tf = None


def normalise(pixels, preprocessing):
    """A recipe's normalisation of `[0, 255]` images, in float64 (as
    `la_keras.datasets.preprocess_images` writes it)."""
    x = np.asarray(pixels, np.float64) / 255.0
    if preprocessing == "cifar":
        return x - 0.5
    return (x - np.asarray(IMAGENET_MEAN)) / np.asarray(IMAGENET_STD)


def scale_reference(pixels, mode):
    """`keras.applications.imagenet_utils.preprocess_input`'s modes on
    `[0, 255]` RGB, written out in float64."""
    x = np.asarray(pixels, np.float64)
    if mode == "tf":
        return x / 127.5 - 1.0
    if mode == "torch":
        mean = np.array([0.485, 0.456, 0.406]) * 255.0
        std = np.array([0.229, 0.224, 0.225]) * 255.0
        return (x - mean) / std
    if mode == "caffe":
        return x[..., ::-1] - np.array([103.939, 116.779, 123.68])
    return x


def bilinear_reference(images, size):
    """Bilinear resize with half-pixel centres, no antialiasing, float64:
    each output pixel samples the input at `(i + 0.5) * in / out - 0.5`,
    clamped to the image."""
    x = np.asarray(images, np.float64)

    def weights(n_in, n_out):
        src = (np.arange(n_out) + 0.5) * n_in / n_out - 0.5
        src = np.clip(src, 0.0, n_in - 1)
        low = np.floor(src).astype(int)
        high = np.minimum(low + 1, n_in - 1)
        frac = src - low
        matrix = np.zeros((n_out, n_in))
        matrix[np.arange(n_out), low] += 1.0 - frac
        matrix[np.arange(n_out), high] += frac
        return matrix

    rows = weights(x.shape[1], size[0])
    cols = weights(x.shape[2], size[1])
    return np.einsum("hi,bijc,wj->bhwc", rows, x, cols)


def layer_reference(x, scale, offset, size, mode):
    """The layer's formula in float64."""
    pixels = np.asarray(x, np.float64) * np.asarray(scale) + np.asarray(offset)
    if pixels.shape[-1] == 1:
        pixels = np.repeat(pixels, 3, axis=-1)
    if tuple(pixels.shape[1:3]) != tuple(size):
        pixels = bilinear_reference(pixels, size)
    return scale_reference(pixels, mode)


def random_pixels(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, np.uint8)


def run(layer, x):
    return keras.ops.convert_to_numpy(layer(x.astype("float32")))


class PixelAffineTest(TestCase):
    def test_inverts_each_recipe_exactly(self):
        pixels = random_pixels((2, 8, 8, 3))
        for preprocessing in ("cifar", "imagenet"):
            scale, offset = pixel_affine(preprocessing, 3)
            back = normalise(pixels, preprocessing) * scale + np.asarray(offset)
            np.testing.assert_allclose(back, pixels, atol=1e-9)

    def test_gray_cifar(self):
        self.assertEqual(pixel_affine("cifar", 1), ([255.0], [127.5]))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(
            ValueError,
            r"Invalid value for argument `preprocessing`.*"
            r"Received: preprocessing='inception'",
        ):
            pixel_affine("inception", 3)
        with self.assertRaisesRegex(
            ValueError, r"Invalid value for argument `channels`.*channels=1"
        ):
            pixel_affine("imagenet", 1)


class BackboneInputTest(TestCase):
    def test_each_mode_and_recipe_matches_reference(self):
        pixels = random_pixels((2, 12, 12, 3))
        for preprocessing in ("cifar", "imagenet"):
            x64 = normalise(pixels, preprocessing)
            x = x64.astype("float32")
            scale, offset = pixel_affine(preprocessing, 3)
            for mode in MODES:
                with self.subTest(preprocessing=preprocessing, mode=mode):
                    layer = BackboneInput(scale, offset, (12, 12), mode)
                    expected = layer_reference(x, scale, offset, (12, 12), mode)
                    # float32 of values up to ~255: a few ulps of 255.
                    np.testing.assert_allclose(
                        run(layer, x), expected, rtol=0, atol=1e-4
                    )
                    # The recipe undone: the backbone sees the uint8 pixels.
                    np.testing.assert_allclose(
                        layer_reference(x64, scale, offset, (12, 12), mode),
                        scale_reference(pixels, mode),
                        atol=1e-9,
                    )

    def test_raw_mode_gives_back_the_pixels(self):
        pixels = random_pixels((3, 10, 10, 3), seed=1)
        for preprocessing in ("cifar", "imagenet"):
            scale, offset = pixel_affine(preprocessing, 3)
            layer = BackboneInput(scale, offset, (10, 10), "raw")
            out = run(layer, normalise(pixels, preprocessing))
            # Within float32 rounding of 255, so rounding gives each pixel.
            self.assertLess(np.abs(out - pixels).max(), 1e-3)
            np.testing.assert_array_equal(np.round(out), pixels)

    def test_caffe_mode_is_bgr(self):
        pixels = np.zeros((1, 4, 4, 3), np.uint8)
        pixels[..., 0] = 200  # red
        scale, offset = pixel_affine("cifar", 3)
        out = run(
            BackboneInput(scale, offset, (4, 4), "caffe"),
            normalise(pixels, "cifar"),
        )
        # BGR order: red is the last channel, minus the red mean.
        np.testing.assert_allclose(
            out[0, 0, 0], [-103.939, -116.779, 200 - 123.68], atol=1e-4
        )

    def test_gray_repeated_to_rgb(self):
        pixels = random_pixels((2, 9, 9, 1), seed=2)
        scale, offset = pixel_affine("cifar", 1)
        x = normalise(pixels, "cifar")
        layer = BackboneInput(scale, offset, (9, 9), "tf")
        out = run(layer, x)
        self.assertEqual(out.shape, (2, 9, 9, 3))
        np.testing.assert_allclose(
            out, layer_reference(x, scale, offset, (9, 9), "tf"), atol=1e-6
        )
        for channel in range(3):
            np.testing.assert_array_equal(out[..., channel], out[..., 0])
        self.assertEqual(
            layer.compute_output_shape((None, 9, 9, 1)), (None, 9, 9, 3)
        )

    def test_resize(self):
        # Up (28 -> 32, 32 -> 64), down (64 -> 32), anisotropic, gray.
        cases = [
            ((2, 28, 28, 1), (32, 32)),
            ((2, 32, 32, 3), (64, 64)),
            ((1, 64, 64, 3), (32, 32)),
            ((1, 20, 30, 3), (40, 45)),
        ]
        for shape, size in cases:
            with self.subTest(shape=shape, size=size):
                pixels = random_pixels(shape, seed=3)
                scale, offset = pixel_affine("cifar", shape[-1])
                x = normalise(pixels, "cifar").astype("float32")
                layer = BackboneInput(scale, offset, size, "raw")
                out = run(layer, x)
                self.assertEqual(out.shape, (shape[0], *size, 3))
                self.assertEqual(
                    layer.compute_output_shape((None, *shape[1:])),
                    (None, *size, 3),
                )
                expected = layer_reference(x, scale, offset, size, "raw")
                np.testing.assert_allclose(out, expected, rtol=0, atol=1e-3)
                if tf is not None:
                    rgb = np.repeat(pixels, 3 // shape[-1], axis=-1)
                    resized = tf.image.resize(
                        rgb.astype("float32"), size, method="bilinear"
                    ).numpy()
                    np.testing.assert_allclose(out, resized, atol=1e-3)

    def test_in_a_functional_model(self):
        scale, offset = pixel_affine("cifar", 1)
        inputs = keras.Input((28, 28, 1))
        outputs = BackboneInput(scale, offset, (32, 32), "tf")(inputs)
        model = keras.Model(inputs, outputs)
        self.assertEqual(model.output_shape, (None, 32, 32, 3))
        pixels = random_pixels((2, 28, 28, 1), seed=4)
        x = normalise(pixels, "cifar").astype("float32")
        np.testing.assert_allclose(
            keras.ops.convert_to_numpy(model(x)),
            layer_reference(x, scale, offset, (32, 32), "tf"),
            atol=1e-5,
        )
        self.run_model_saving_test(model, x)

    def test_config_round_trip(self):
        scale, offset = pixel_affine("imagenet", 3)
        layer = BackboneInput(scale, offset, (48, 40), "torch", name="bi")
        revived = self.run_serialization_test(layer)
        self.assertEqual(revived.size, (48, 40))
        self.assertEqual(revived.mode, "torch")
        self.assertEqual(revived.input_scale, scale)
        self.assertEqual(revived.input_offset, offset)
        x = normalise(random_pixels((1, 8, 8, 3), seed=5), "imagenet")
        np.testing.assert_array_equal(run(revived, x), run(layer, x))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(
            ValueError,
            r"^Invalid value for argument `mode`\. Expected one of .*"
            r"Received: mode='inception'$",
        ):
            BackboneInput([255.0], [127.5], (32, 32), "inception")
        for scale, offset in (
            ([255.0, 255.0], [127.5, 127.5]),  # 2 channels
            ([255.0], [127.5, 127.5, 127.5]),  # lengths differ
            ([], []),
        ):
            with self.subTest(scale=scale, offset=offset):
                with self.assertRaisesRegex(
                    ValueError,
                    r"^Invalid value for arguments `input_scale` and "
                    r"`input_offset`\..*Received: input_scale=",
                ) as caught:
                    BackboneInput(scale, offset, (32, 32), "tf")
                self.assertNotIn("\n", str(caught.exception))
