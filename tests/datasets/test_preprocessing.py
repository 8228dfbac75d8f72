"""Tests of `preprocess_images`."""

import numpy as np
import tensorflow as tf

from la_keras.datasets import preprocess_images
from la_keras.datasets import preprocessing
from tests.datasets import crops
from tests.test_case import TestCase


def _random_images(shape, seed=0):
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


class CifarPreprocessingTest(TestCase):
    def test_eval_normalizes(self):
        images = _random_images([2, 32, 32, 3])
        out = preprocess_images(images, "cifar")
        self.assertEqual(out.dtype, tf.float32)
        self.assertAllClose(out, images / 255.0 - 0.5, atol=1e-6)

    def _check_train_crops(self, images, pad=2, **kwargs):
        out = preprocess_images(images, "cifar", True, **kwargs).numpy()
        self.assertEqual(out.shape, images.shape)
        seen = set()
        for image, result in zip(images, out, strict=True):
            matches = crops.matching_windows(image, result, pad)
            self.assertNotEmpty(matches, "output is no padded crop/flip")
            seen.add(matches[0])
        return seen

    def test_train_is_zero_pad_crop_and_flip_per_image(self):
        images = _random_images([48, 32, 32, 3])
        seen = self._check_train_crops(images)
        # Offsets and flips are drawn per image.
        self.assertGreater(len({(dy, dx) for dy, dx, _ in seen}), 5)
        self.assertEqual({flip for _, _, flip in seen}, {False, True})

    def test_crop_padding_four_is_the_ldam_convention(self):
        images = _random_images([48, 32, 32, 3], seed=1)
        seen = self._check_train_crops(images, pad=4, crop_padding=4)
        # Some crops moved more than the default 2 pixels.
        shifts = [max(abs(dy - 4), abs(dx - 4)) for dy, dx, _ in seen]
        self.assertGreater(max(shifts), 2)

    def test_crop_padding_zero_only_flips(self):
        images = _random_images([16, 8, 8, 3], seed=2)
        seen = self._check_train_crops(images, pad=0, crop_padding=0)
        self.assertEqual({(dy, dx) for dy, dx, _ in seen}, {(0, 0)})
        self.assertEqual({flip for _, _, flip in seen}, {False, True})

    def test_padding_is_zero_in_normalized_space(self):
        images = np.full([64, 8, 8, 1], 255, np.uint8)
        out = preprocess_images(images, "cifar", training=True).numpy()
        # Pixels are 0.5 inside the image and exactly 0.0 in the padding.
        self.assertAllInSet(np.unique(out), [0.0, 0.5])
        self.assertIn(0.0, out)

    def test_grayscale_and_other_sizes(self):
        images = _random_images([6, 28, 28, 1])
        self._check_train_crops(images)
        self.assertEqual(
            preprocess_images(images, "cifar").shape, (6, 28, 28, 1)
        )

    def test_train_keeps_static_shape_in_tf_function(self):
        fn = tf.function(lambda x: preprocess_images(x, "cifar", True))
        out = fn.get_concrete_function(
            tf.TensorSpec([None, 32, 32, 3], tf.uint8)
        ).structured_outputs
        self.assertEqual(out.shape.as_list(), [None, 32, 32, 3])


class ImagenetPreprocessingTest(TestCase):
    def test_eval_resize_and_center_crop(self):
        # Left half 0, right half 255: the center crop keeps both halves.
        image = np.zeros([1, 300, 400, 3], np.uint8)
        image[:, :, 200:] = 255
        out = preprocess_images(image, "imagenet").numpy()
        self.assertEqual(out.shape, (1, 224, 224, 3))
        mean = np.array(preprocessing.IMAGENET_MEAN)
        std = np.array(preprocessing.IMAGENET_STD)
        self.assertAllClose(out[0, 0, 0], (0 - mean) / std, atol=1e-5)
        self.assertAllClose(out[0, 0, -1], (1 - mean) / std, atol=1e-5)
        # 300x400 resizes to 256x341, the crop starts at column 58: the
        # boundary at 170.5 lands at 112.5 in the crop.
        self.assertAllClose(out[0, 5, 110], (0 - mean) / std, atol=1e-5)
        self.assertAllClose(out[0, 5, 115], (1 - mean) / std, atol=1e-5)

    def test_eval_in_tf_function_with_unknown_size(self):
        fn = tf.function(
            lambda x: preprocess_images(x, "imagenet"),
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)],
        )
        out = fn(tf.zeros([2, 240, 250, 3], tf.uint8))
        self.assertEqual(out.shape, (2, 224, 224, 3))

    def test_train_random_resized_crop(self):
        images = np.tile(
            np.arange(200, dtype=np.uint8)[None, :, None, None], [8, 1, 200, 3]
        )
        out = preprocess_images(images, "imagenet", training=True).numpy()
        self.assertEqual(out.shape, (8, 224, 224, 3))
        # Rows hold increasing values; each crop covers a different range.
        rows = out[:, :, 100, 0]
        self.assertTrue(np.all(np.diff(rows, axis=1) >= -1e-4))
        self.assertGreater(len({round(float(r[0]), 3) for r in rows}), 1)
        low = (0 - 0.485) / 0.229
        high = (199 / 255 - 0.485) / 0.229
        self.assertTrue(np.all(out[..., 0] >= low - 1e-4))
        self.assertTrue(np.all(out[..., 0] <= high + 1e-4))

    def test_train_flips_half_the_crops_left_right(self):
        # Columns hold increasing values: an unflipped crop's rows increase,
        # a flipped one's decrease (the flip is drawn per image, p = 1/2).
        images = np.tile(
            np.arange(200, dtype=np.uint8)[None, None, :, None], [64, 120, 1, 3]
        )
        tf.random.set_seed(3)
        out = preprocess_images(
            images, "imagenet", training=True, image_size=(40, 56)
        ).numpy()
        self.assertEqual(out.shape, (64, 40, 56, 3))
        steps = np.diff(out[:, 20, :, 0], axis=1)
        increasing = np.all(steps >= -1e-4, axis=1)
        decreasing = np.all(steps <= 1e-4, axis=1)
        self.assertTrue(np.all(increasing | decreasing))
        flipped = int(np.sum(decreasing & ~increasing))
        # Binomial(64, 1/2): 16..48 holds with probability 1 - 6e-5.
        self.assertBetween(flipped, 16, 48)

    def test_grayscale_becomes_rgb(self):
        out = preprocess_images(
            tf.zeros([1, 256, 256, 1], tf.uint8), "imagenet"
        )
        self.assertEqual(out.shape, (1, 224, 224, 3))


class PreprocessingErrorsTest(TestCase):
    def test_unknown_preprocessing(self):
        with self.assertRaisesRegex(ValueError, "argument `preprocessing`"):
            preprocess_images(tf.zeros([1, 4, 4, 3], tf.uint8), "vgg")

    def test_bad_crop_padding(self):
        images = tf.zeros([1, 4, 4, 3], tf.uint8)
        for bad in (-1, 1.5, 2.0, "2", True, None):
            with self.assertRaisesRegex(ValueError, "argument `crop_padding`"):
                preprocess_images(images, "cifar", True, crop_padding=bad)
        # Refused in evaluation too, where the padding is unused.
        with self.assertRaisesRegex(ValueError, "argument `crop_padding`"):
            preprocess_images(images, "cifar", crop_padding=-2)
        with self.assertRaisesRegex(ValueError, "takes no padding"):
            preprocess_images(images, "imagenet", True, crop_padding=4)
        self.assertEqual(preprocessing.check_crop_padding(np.int64(4)), 4)

    def test_not_a_batch(self):
        with self.assertRaisesRegex(ValueError, "argument `images`"):
            preprocess_images(tf.zeros([4, 4, 3], tf.uint8), "cifar")
