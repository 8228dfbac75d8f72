"""Checks of arguments shared by the dataset and export modules."""

from __future__ import annotations

import numbers

import numpy as np


def is_int_at_least(value, minimum: int) -> bool:
    """Whether `value` is an integer, not a bool, and at least `minimum`."""
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and value >= minimum
    )


def uint8_images(images, image_shape, argument: str) -> np.ndarray:
    """`images` as a uint8 array `[N, *image_shape]`; `ValueError` else."""
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != tuple(image_shape):
        raise ValueError(
            f"Invalid value for argument `{argument}`. Expected uint8 images "
            f"of shape [N, {', '.join(map(str, image_shape))}]. Received: "
            f"dtype={images.dtype}, shape={images.shape}"
        )
    return images
