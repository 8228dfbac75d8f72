"""Vectorized image preprocessing: the CIFAR and the ImageNet recipes.

`preprocess_images` works on a whole batch at once with plain TensorFlow ops,
so it runs inside `tf.data` after `batch`, inside `tf.function` and inside
exported SavedModels (the evaluation branch is what export wraps).
"""

from __future__ import annotations

import tensorflow as tf

from la_keras.datasets import orientation
from la_keras.datasets.arguments import is_int_at_least
from la_keras.datasets.normalization import IMAGENET_MEAN
from la_keras.datasets.normalization import IMAGENET_STD

# The official release pads a 32x32 image to 36x36
# (`tf.image.resize_with_crop_or_pad(x, 36, 36)`): 2 pixels a side. LDAM and
# BBN pad 4 pixels a side; pass `crop_padding=4` for that.
CIFAR_CROP_PADDING = 2
IMAGENET_SIZE = 224
IMAGENET_RESIZE = 256
# Random resized crop: the area and aspect-ratio ranges of Inception / ResNet.
CROP_AREA_RANGE = (0.08, 1.0)
CROP_ASPECT_RANGE = (3.0 / 4.0, 4.0 / 3.0)


def check_crop_padding(crop_padding, preprocessing="cifar") -> int:
    """Validates `crop_padding` for `preprocessing` and returns it as an int.

    Raises:
        ValueError: if `crop_padding` is not an integer >= 0, or differs from
            the default for the `"imagenet"` recipe, which does not pad.
    """
    if not is_int_at_least(crop_padding, 0):
        raise ValueError(
            "Invalid value for argument `crop_padding`. Expected an integer "
            ">= 0: the zero padding on each side of a CIFAR training image "
            "before the random crop (2 as the official release, 4 as "
            f"LDAM / BBN, 0 for flips only). Received: crop_padding={crop_padding!r}"
        )
    if preprocessing == "imagenet" and crop_padding != CIFAR_CROP_PADDING:
        raise ValueError(
            "Invalid value for argument `crop_padding`: the 'imagenet' recipe "
            "crops with a random resized crop and takes no padding. Leave "
            f"crop_padding={CIFAR_CROP_PADDING}. Received: "
            f"crop_padding={crop_padding!r}"
        )
    return int(crop_padding)


def preprocess_images(
    images,
    preprocessing,
    training=False,
    *,
    crop_padding=CIFAR_CROP_PADDING,
    image_size=None,
    seed=None,
):
    """Preprocesses a batch of uint8 images into float32 model inputs.

    `"cifar"`: `x / 255 - 0.5`; for training, then zero padding of
    `p = crop_padding` pixels on each side (the pad value is 0 after the
    normalization), a uniformly random `H x W` crop of the padded
    `(H + 2p) x (W + 2p)` image and a left-right flip with probability 1/2,
    the crop offset and the flip drawn per image: shifts of at most `p`
    pixels each way. With the default `crop_padding=2`, 32x32 images come
    out as from the official release's `resize_with_crop_or_pad(x, 36, 36)`,
    `random_crop(x, [32, 32, 3])`, `random_flip_left_right(x)` (the same
    distribution, other random draws). Works for any size and channel count
    (e.g. 28x28x1 MNIST).

    `"imagenet"`: for training, a random resized crop to `image_size`
    (224x224 by default; area in [0.08, 1], aspect ratio in [3/4, 4/3]) and
    a random flip; for evaluation, a resize of the shorter side to
    256/224 of it (256 for 224) and a center crop of `image_size`. Then
    `(x / 255 - mean) / std` with the ImageNet mean and std. Grayscale inputs
    are repeated to three channels.

    Args:
        images: uint8 (or float in [0, 255]) tensor `[batch, H, W, C]`.
        preprocessing: `"cifar"` or `"imagenet"`.
        training: whether to apply the random augmentation.
        crop_padding: pixels of zero padding on each side before the random
            crop of the `"cifar"` training recipe, an integer >= 0. 2 is the
            official release's; 4 is the LDAM / BBN convention. The
            `"imagenet"` recipe takes only the default.
        image_size: `(H, W)` of the `"imagenet"` recipe's output (default
            224x224); the `"cifar"` recipe keeps the input's size.
        seed: the training augmentation's seed, an integer tensor of shape
            `[2]`: its draws are stateless random ops of this seed, so the
            same seed gives the same crops and flips on any thread, in any
            order of a parallel `map`, and in a resumed run. None draws one
            from TensorFlow's global random state (one draw per call).

    Returns:
        A float32 tensor `[batch, H', W', C']`.

    Example:

    >>> images = tf.zeros([2, 32, 32, 3], tf.uint8)
    >>> preprocess_images(images, "cifar").shape
    TensorShape([2, 32, 32, 3])
    """
    images = tf.convert_to_tensor(images)
    if images.shape.rank is not None and images.shape.rank != 4:
        raise ValueError(
            "Invalid value for argument `images`. Expected a batch of images "
            f"of shape [batch, height, width, channels]. Received: "
            f"images.shape={images.shape}"
        )
    if preprocessing not in ("cifar", "imagenet"):
        raise ValueError(
            "Invalid value for argument `preprocessing`. Expected 'cifar' or "
            f"'imagenet'. Received: preprocessing={preprocessing!r}"
        )
    pad = check_crop_padding(crop_padding, preprocessing)
    if training:
        seed = augmentation_seed(seed)
    if preprocessing == "cifar":
        return _cifar(tf.cast(images, tf.float32), training, pad, seed)
    size = (IMAGENET_SIZE, IMAGENET_SIZE) if image_size is None else image_size
    return _imagenet(images, training, tuple(int(v) for v in size), seed)


def augmentation_seed(seed=None):
    """`seed` as an int64 tensor `[2]` for stateless random ops; None draws
    one from TensorFlow's global random state."""
    if seed is None:
        return tf.random.uniform([2], maxval=tf.int64.max, dtype=tf.int64)
    seed = tf.convert_to_tensor(seed)
    if not seed.dtype.is_integer or not seed.shape.is_compatible_with([2]):
        raise ValueError(
            "Invalid value for argument `seed`. Expected None or an integer "
            "tensor of shape [2] (a stateless random seed). Received: "
            f"seed with shape {seed.shape} and dtype {seed.dtype.name}"
        )
    return tf.cast(seed, tf.int64)


def _draws(seed, count):
    """`count` independent stateless seeds `[2]` from `seed`."""
    return tf.unstack(tf.random.experimental.stateless_split(seed, count))


def _cifar(images, training, pad, seed):
    images = images / 255.0 - 0.5
    if not training:
        return images
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offset_seed, flip_seed = _draws(seed, 2)
    offsets = tf.random.stateless_uniform(
        [2, batch], offset_seed, 0, 2 * pad + 1, tf.int32
    )
    rows = offsets[0][:, None] + tf.range(height)[None, :]
    cols = offsets[1][:, None] + tf.range(width)[None, :]
    flip = tf.random.stateless_uniform([batch], flip_seed) < 0.5
    # A flip reverses the column indices of the crop window.
    cols = tf.where(flip[:, None], tf.reverse(cols, axis=[1]), cols)
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    cropped = tf.gather(cropped, cols, axis=2, batch_dims=1)
    cropped.set_shape(images.shape)
    return cropped


def evaluation_pixels(images, preprocessing, image_size=None):
    """The evaluation recipe's geometry only: float32 pixels in `[0, 255]`.

    `preprocess_images(images, preprocessing)` (evaluation) is these pixels
    under the recipe's per-channel affine normalisation
    (`la_keras.datasets.normalization.pixel_affine`): for "cifar" the
    images as they are, for "imagenet" repeated to RGB, resized and
    center-cropped to `image_size`. An exporter whose model undoes the
    normalisation first (`la_keras.layers.BackboneInput`) feeds it these.
    """
    images = tf.convert_to_tensor(images)
    if preprocessing == "cifar":
        return tf.cast(images, tf.float32)
    if images.shape[-1] == 1:
        images = tf.image.grayscale_to_rgb(images)
    size = (IMAGENET_SIZE, IMAGENET_SIZE) if image_size is None else image_size
    return _resize_and_center_crop(images, tuple(int(v) for v in size))


def _imagenet(images, training, size, seed):
    # The crop or resize reads the images as they come (uint8): no cast of
    # the full-size batch; its output is float32 at `size`.
    if images.shape[-1] == 1:
        images = tf.image.grayscale_to_rgb(images)
    if training:
        images = _random_resized_crop(images, size, seed)
    else:
        images = _resize_and_center_crop(images, size)
    mean = tf.constant(IMAGENET_MEAN, tf.float32) * 255.0
    std = tf.constant(IMAGENET_STD, tf.float32) * 255.0
    return images * (1.0 / std) - mean / std


def _random_resized_crop(images, size, seed):
    """Random resized crops of `images` to `size`, each flipped left-right
    with probability 1/2 (by its box: x1 > x2 samples the crop mirrored)."""
    shape = tf.shape(images)
    batch = shape[0]
    height = tf.cast(shape[1], tf.float32)
    width = tf.cast(shape[2], tf.float32)
    area_seed, aspect_seed, place_seed, flip_seed = _draws(seed, 4)
    area_fraction = tf.random.stateless_uniform([batch], area_seed)
    low, high = CROP_AREA_RANGE
    area = height * width * (low + (high - low) * area_fraction)
    log_low, log_high = (tf.math.log(r) for r in CROP_ASPECT_RANGE)
    aspect = tf.exp(
        tf.random.stateless_uniform([batch], aspect_seed, log_low, log_high)
    )
    crop_w = tf.minimum(tf.round(tf.sqrt(area * aspect)), width)
    crop_h = tf.minimum(tf.round(tf.sqrt(area / aspect)), height)
    crop_w = tf.maximum(crop_w, 1.0)
    crop_h = tf.maximum(crop_h, 1.0)
    place = tf.random.stateless_uniform([2, batch], place_seed)
    top = tf.floor(place[0] * (height - crop_h + 1.0))
    left = tf.floor(place[1] * (width - crop_w + 1.0))
    # crop_and_resize maps a box coordinate y to pixel y * (size - 1).
    denom_h = tf.maximum(height - 1.0, 1.0)
    denom_w = tf.maximum(width - 1.0, 1.0)
    x1 = left / denom_w
    x2 = (left + crop_w - 1.0) / denom_w
    flip = tf.random.stateless_uniform([batch], flip_seed) < 0.5
    boxes = tf.stack(
        [
            top / denom_h,
            tf.where(flip, x2, x1),
            (top + crop_h - 1.0) / denom_h,
            tf.where(flip, x1, x2),
        ],
        axis=1,
    )
    return tf.image.crop_and_resize(
        images,
        boxes,
        tf.range(batch),
        list(size),
    )


def _resize_and_center_crop(images, size):
    out_h, out_w = size
    shape = tf.shape(images)
    height = tf.cast(shape[1], tf.float32)
    width = tf.cast(shape[2], tf.float32)
    # The shorter side to 256/224 of the crop's shorter side (256 for 224).
    scale = IMAGENET_RESIZE / IMAGENET_SIZE * min(out_h, out_w)
    scale = scale / tf.minimum(height, width)
    new_h = tf.maximum(tf.cast(tf.round(height * scale), tf.int32), out_h)
    new_w = tf.maximum(tf.cast(tf.round(width * scale), tf.int32), out_w)
    images = tf.image.resize(images, [new_h, new_w], method="bilinear")
    top = (new_h - out_h) // 2
    left = (new_w - out_w) // 2
    images = images[:, top : top + out_h, left : left + out_w, :]
    return tf.ensure_shape(images, [None, out_h, out_w, None])


# ITU-R 601-2 luma (0.299, 0.587, 0.114) in Pillow's fixed point (RGB -> L:
# weights in 1/65536, rounded), so that both readers agree to the level.
_LUMA = (19595, 38470, 7471)


def decode_image(contents, channels: int, resize=None):
    """A PNG, JPEG, BMP or GIF (first frame) file as uint8 `[H, W, channels]`.

    Decoded as RGB (gray repeated, alpha dropped; a JPEG with the accurate
    DCT, as Pillow), turned upright by its EXIF orientation
    (`orientation.py`: a JPEG's or PNG's; H and W are the upright ones),
    then reduced to luma (Pillow's) for
    `channels=1` (rounded: a gray image comes back unchanged), then resized
    to `resize` (`resize_images`) if given.
    """
    image = tf.cond(
        tf.io.is_jpeg(contents),
        # libjpeg's accurate integer DCT, Pillow's: the two readers agree
        # (TensorFlow's default, the fast DCT, differs by up to ~6 levels).
        lambda: tf.io.decode_jpeg(
            contents, channels=3, dct_method="INTEGER_ACCURATE"
        ),
        lambda: tf.io.decode_image(
            contents, channels=3, expand_animations=False
        ),
    )
    image = orientation.apply_orientation(
        image, orientation.decode_orientation(contents)
    )
    if channels == 1:
        weighted = tf.cast(image, tf.int32) * tf.constant(_LUMA, tf.int32)
        luma = (tf.reduce_sum(weighted, axis=2, keepdims=True) + 2**15) // 2**16
        image = tf.cast(luma, tf.uint8)
    if resize is not None:
        image = resize_images(image[None], resize)[0]
    return image


def resize_images(images, size):
    """uint8 `[B, H, W, C]` resized to `size` (bilinear, antialiased), uint8.

    The resize of a folder dataset's `image_size`, in its input pipeline and
    in the served model.
    """
    resized = tf.image.resize(
        tf.cast(images, tf.float32), list(size), method="bilinear",
        antialias=True,
    )  # fmt: skip
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)
