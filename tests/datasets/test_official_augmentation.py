"""The CIFAR training augmentation against the official release's.

The official `utils._process_image` does, image by image:

    image = image * (1. / 255) - 0.5
    image = tf.image.resize_with_crop_or_pad(image, 32 + 4, 32 + 4)
    image = tf.image.random_crop(image, [32, 32, 3])
    image = tf.image.random_flip_left_right(image)

i.e. 2 pixels of zeros a side in the normalized space and shifts of at most
2 pixels. `preprocess_images` draws from other random streams, so these tests
compare what can come out, not one draw.
"""

import numpy as np
import tensorflow as tf

from la_keras.datasets import DatasetBuilder
from la_keras.datasets import load
from la_keras.datasets import preprocess_images
from tests.datasets import crops
from tests.test_case import TestCase


def _official(images, padding=4):
    """The official per-image augmentation, `padding` extra pixels in all."""
    images = tf.convert_to_tensor(images)
    _, height, width, channels = images.shape

    def process(image):
        image = tf.cast(image, tf.float32) * (1.0 / 255) - 0.5
        image = tf.image.resize_with_crop_or_pad(
            image, height + padding, width + padding
        )
        image = tf.image.random_crop(image, [height, width, channels])
        return tf.image.random_flip_left_right(image)

    return tf.function(
        lambda x: tf.map_fn(process, x, fn_output_signature=tf.float32)
    )(images).numpy()


def _keys(outputs):
    """Exact integer keys of normalized outputs: 2 * pixel, 255 for padding."""
    doubled = np.rint((outputs.astype(np.float64) + 0.5) * 510).astype(np.int64)
    return {x.tobytes() for x in doubled}


def _coordinate_image(size=12):
    """An image whose channel 0 is row + 1 and channel 1 is column + 1."""
    rows, cols = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    return np.stack([rows + 1, cols + 1], axis=-1).astype(np.uint8)


def _shifts_and_flips(image, outputs, pad):
    """`(sy, sx, flip)` of each output of `image`, checked to be that window."""
    size = image.shape[0]
    c = size // 2
    normalized = image.astype(np.float64) / 255.0 - 0.5
    padded = np.pad(normalized, [(pad, pad), (pad, pad), (0, 0)])
    raw = np.rint((outputs.astype(np.float64) + 0.5) * 255).astype(np.int64)
    found = []
    for out, pixels in zip(outputs, raw, strict=True):
        flip = bool(pixels[c, c + 1, 1] < pixels[c, c, 1])
        sy = int(pixels[c, c, 0]) - 1 - c
        sx = int(pixels[c, c, 1]) - 1 - (size - 1 - c if flip else c)
        window = padded[sy + pad : sy + pad + size, sx + pad : sx + pad + size]
        window = window[:, ::-1] if flip else window
        np.testing.assert_allclose(out, window, atol=1e-6)
        found.append((sy, sx, flip))
    return found


class OfficialReferenceTest(TestCase):
    def _check_same_outputs(self, pad, draws, **kwargs):
        tf.random.set_seed(7)
        image = np.random.default_rng(3).integers(0, 256, [8, 8, 3], np.uint8)
        images = np.broadcast_to(image, [draws, 8, 8, 3])
        ours = preprocess_images(images, "cifar", True, **kwargs).numpy()
        theirs = _official(images, padding=2 * pad)
        # Every shift and flip shows up in both; each distinct output of
        # ours is one of the official's and the other way round.
        expected = 2 * (2 * pad + 1) ** 2
        self.assertLen(_keys(theirs), expected)
        self.assertEqual(_keys(ours), _keys(theirs))

    def test_default_matches_official_36x36_pad_crop_flip(self):
        self._check_same_outputs(pad=2, draws=1500)

    def test_crop_padding_four_matches_40x40(self):
        self._check_same_outputs(pad=4, draws=4000, crop_padding=4)

    def test_official_padded_image_is_ours(self):
        # The official 36x36 padding of a 32x32 image is 2 zero pixels a
        # side of the normalized image: every output of ours is a 32x32
        # window of it, flipped or not.
        tf.random.set_seed(1)
        images = np.random.default_rng(4).integers(
            0, 256, [16, 32, 32, 3], np.uint8
        )
        normalized = tf.cast(images, tf.float32) * (1.0 / 255) - 0.5
        padded = tf.image.resize_with_crop_or_pad(normalized, 36, 36).numpy()
        ours = preprocess_images(images, "cifar", training=True).numpy()
        for pad_image, out in zip(padded, ours, strict=True):
            windows = [
                pad_image[dy : dy + 32, dx : dx + 32]
                for dy in range(5)
                for dx in range(5)
            ]
            windows += [w[:, ::-1] for w in windows]
            self.assertTrue(
                any(np.allclose(out, w, atol=1e-6) for w in windows)
            )


class ShiftDistributionTest(TestCase):
    def _shift_counts(self, pad, n, **kwargs):
        tf.random.set_seed(11)
        image = _coordinate_image()
        outputs = preprocess_images(
            np.broadcast_to(image, [n, *image.shape]),
            "cifar",
            True,
            **kwargs,
        ).numpy()
        found = _shifts_and_flips(image, outputs, pad)
        shifts = {}
        for sy, sx, _ in found:
            shifts[(sy, sx)] = shifts.get((sy, sx), 0) + 1
        flips = np.mean([flip for _, _, flip in found])
        return shifts, flips

    def test_default_shifts_cover_exactly_two_pixels(self):
        shifts, flips = self._shift_counts(2, 5000)
        grid = {(y, x) for y in range(-2, 3) for x in range(-2, 3)}
        self.assertEqual(set(shifts), grid)
        # Uniform: 200 expected per shift, a standard deviation of 14.
        self.assertAllInRange(list(shifts.values()), 130, 270)
        self.assertBetween(flips, 0.45, 0.55)

    def test_crop_padding_four_shifts_cover_four_pixels(self):
        shifts, flips = self._shift_counts(4, 8100, crop_padding=4)
        grid = {(y, x) for y in range(-4, 5) for x in range(-4, 5)}
        self.assertEqual(set(shifts), grid)
        self.assertAllInRange(list(shifts.values()), 50, 150)
        self.assertBetween(flips, 0.45, 0.55)


class PipelineCropPaddingTest(TestCase):
    def _offsets(self, **kwargs):
        builder = DatasetBuilder(
            "test", "train", 46, True, drop_remainder=False, **kwargs
        )
        raw, _ = load("test", "train")
        by_class = {}
        for image, label in raw.as_numpy_iterator():
            by_class.setdefault(int(label), []).append(image)
        pad = builder.crop_padding
        offsets = []
        for images, labels in builder.build():
            for out, label in zip(images.numpy(), labels.numpy(), strict=True):
                matches = [
                    key
                    for image in by_class[int(label)]
                    for key in crops.matching_windows(image, out, pad)
                ]
                self.assertNotEmpty(matches)
                dy, dx, _ = matches[0]
                offsets.append(max(abs(dy - pad), abs(dx - pad)))
        return offsets

    def test_builder_pads_two_pixels_by_default(self):
        self.assertEqual(max(self._offsets()), 2)

    def test_builder_passes_crop_padding_down(self):
        self.assertGreater(max(self._offsets(crop_padding=4)), 2)

    def test_builder_refuses_bad_crop_padding(self):
        empty = self.get_temp_dir()
        for bad in (-1, 2.5, "4", False):
            with self.assertRaisesRegex(ValueError, "argument `crop_padding`"):
                DatasetBuilder("test", "train", 8, True, crop_padding=bad)
            # Before any file is read: the folder holds none.
            with self.assertRaisesRegex(ValueError, "argument `crop_padding`"):
                DatasetBuilder(
                    "cifar10-lt", "train", 8, True, empty, crop_padding=bad
                )
