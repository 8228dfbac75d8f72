"""The pixel normalisations of the two recipes, without TensorFlow.

The data pipelines hand a model float32 images normalised by their recipe
(`la_keras.datasets.preprocess_images`): `x / 255 - 0.5` for `"cifar"`,
`(x / 255 - mean) / std` with the ImageNet mean and std for `"imagenet"`.
A pretrained backbone wants its own input scaling instead; `pixel_affine`
gives the exact inverse of a recipe's normalisation, so that the model can
map its inputs back to `[0, 255]` pixels (`la_keras.layers.BackboneInput`).
"""

from __future__ import annotations

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PREPROCESSINGS = ("cifar", "imagenet")


def pixel_affine(preprocessing: str, channels: int):
    """`(scale, offset)` per channel with `pixels = x * scale + offset`.

    `x` is an image normalised by `preprocessing` ("cifar" or "imagenet")
    with `channels` channels; the result is in `[0, 255]`.

    Example:

    >>> pixel_affine("cifar", 1)
    ([255.0], [127.5])
    """
    if preprocessing not in PREPROCESSINGS:
        raise ValueError(
            "Invalid value for argument `preprocessing`. Expected one of "
            f"{PREPROCESSINGS}. Received: preprocessing={preprocessing!r}"
        )
    if preprocessing == "cifar":
        return [255.0] * channels, [127.5] * channels
    if channels != 3:
        raise ValueError(
            "Invalid value for argument `channels`: the 'imagenet' recipe "
            f"gives RGB images. Received: channels={channels}"
        )
    scale = [float(s) * 255.0 for s in IMAGENET_STD]
    offset = [float(m) * 255.0 for m in IMAGENET_MEAN]
    return scale, offset
