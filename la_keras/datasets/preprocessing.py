"""Vectorized image preprocessing: the CIFAR and the ImageNet recipes.

`preprocess_images` works on a whole batch at once with plain TensorFlow ops,
so it runs inside `tf.data` after `batch`, inside `tf.function` and inside
exported SavedModels (the evaluation branch is what export wraps).
"""

from __future__ import annotations

import tensorflow as tf

CIFAR_PAD = 4
IMAGENET_SIZE = 224
IMAGENET_RESIZE = 256
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Random resized crop: the area and aspect-ratio ranges of Inception / ResNet.
CROP_AREA_RANGE = (0.08, 1.0)
CROP_ASPECT_RANGE = (3.0 / 4.0, 4.0 / 3.0)


def preprocess_images(images, preprocessing, training=False):
    """Preprocesses a batch of uint8 images into float32 model inputs.

    `"cifar"`, as the official release: `x / 255 - 0.5`; for training, then
    zero padding of 4 pixels on each side (in normalized space), a random crop
    back to the input size and a random left-right flip, each drawn per image.
    Works for any size and channel count (e.g. 28x28x1 MNIST).

    `"imagenet"`: for training, a random resized crop to 224x224 (area in
    [0.08, 1], aspect ratio in [3/4, 4/3]) and a random flip; for evaluation,
    a resize of the shorter side to 256 and a 224x224 center crop. Then
    `(x / 255 - mean) / std` with the ImageNet mean and std. Grayscale inputs
    are repeated to three channels.

    Args:
        images: uint8 (or float in [0, 255]) tensor `[batch, H, W, C]`.
        preprocessing: `"cifar"` or `"imagenet"`.
        training: whether to apply the random augmentation.

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
    images = tf.cast(images, tf.float32)
    if preprocessing == "cifar":
        return _cifar(images, training)
    if preprocessing == "imagenet":
        return _imagenet(images, training)
    raise ValueError(
        "Invalid value for argument `preprocessing`. Expected 'cifar' or "
        f"'imagenet'. Received: preprocessing={preprocessing!r}"
    )


def _cifar(images, training):
    images = images / 255.0 - 0.5
    if not training:
        return images
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    pad = CIFAR_PAD
    padded = tf.pad(images, [[0, 0], [pad, pad], [pad, pad], [0, 0]])
    offset_y = tf.random.uniform([batch], 0, 2 * pad + 1, tf.int32)
    offset_x = tf.random.uniform([batch], 0, 2 * pad + 1, tf.int32)
    rows = offset_y[:, None] + tf.range(height)[None, :]
    cols = offset_x[:, None] + tf.range(width)[None, :]
    flip = tf.random.uniform([batch]) < 0.5
    # A flip reverses the column indices of the crop window.
    cols = tf.where(flip[:, None], tf.reverse(cols, axis=[1]), cols)
    cropped = tf.gather(padded, rows, axis=1, batch_dims=1)
    cropped = tf.gather(cropped, cols, axis=2, batch_dims=1)
    cropped.set_shape(images.shape)
    return cropped


def _imagenet(images, training):
    if images.shape[-1] == 1:
        images = tf.image.grayscale_to_rgb(images)
    if training:
        images = _random_resized_crop(images)
        flip = tf.random.uniform([tf.shape(images)[0], 1, 1, 1]) < 0.5
        images = tf.where(flip, tf.reverse(images, axis=[2]), images)
    else:
        images = _resize_and_center_crop(images)
    mean = tf.constant(IMAGENET_MEAN, tf.float32) * 255.0
    std = tf.constant(IMAGENET_STD, tf.float32) * 255.0
    return (images - mean) / std


def _random_resized_crop(images):
    shape = tf.shape(images)
    batch = shape[0]
    height = tf.cast(shape[1], tf.float32)
    width = tf.cast(shape[2], tf.float32)
    area = height * width * tf.random.uniform([batch], *CROP_AREA_RANGE)
    log_low, log_high = (tf.math.log(r) for r in CROP_ASPECT_RANGE)
    aspect = tf.exp(tf.random.uniform([batch], log_low, log_high))
    crop_w = tf.minimum(tf.round(tf.sqrt(area * aspect)), width)
    crop_h = tf.minimum(tf.round(tf.sqrt(area / aspect)), height)
    crop_w = tf.maximum(crop_w, 1.0)
    crop_h = tf.maximum(crop_h, 1.0)
    top = tf.floor(tf.random.uniform([batch]) * (height - crop_h + 1.0))
    left = tf.floor(tf.random.uniform([batch]) * (width - crop_w + 1.0))
    # crop_and_resize maps a box coordinate y to pixel y * (size - 1).
    denom_h = tf.maximum(height - 1.0, 1.0)
    denom_w = tf.maximum(width - 1.0, 1.0)
    boxes = tf.stack(
        [
            top / denom_h,
            left / denom_w,
            (top + crop_h - 1.0) / denom_h,
            (left + crop_w - 1.0) / denom_w,
        ],
        axis=1,
    )
    return tf.image.crop_and_resize(
        images,
        boxes,
        tf.range(batch),
        [IMAGENET_SIZE, IMAGENET_SIZE],
    )


def _resize_and_center_crop(images):
    shape = tf.shape(images)
    height = tf.cast(shape[1], tf.float32)
    width = tf.cast(shape[2], tf.float32)
    scale = IMAGENET_RESIZE / tf.minimum(height, width)
    new_h = tf.maximum(
        tf.cast(tf.round(height * scale), tf.int32), IMAGENET_SIZE
    )
    new_w = tf.maximum(
        tf.cast(tf.round(width * scale), tf.int32), IMAGENET_SIZE
    )
    images = tf.image.resize(images, [new_h, new_w], method="bilinear")
    top = (new_h - IMAGENET_SIZE) // 2
    left = (new_w - IMAGENET_SIZE) // 2
    images = images[
        :, top : top + IMAGENET_SIZE, left : left + IMAGENET_SIZE, :
    ]
    return tf.ensure_shape(images, [None, IMAGENET_SIZE, IMAGENET_SIZE, None])
