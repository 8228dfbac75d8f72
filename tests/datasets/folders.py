"""Small `folder:PATH` datasets for the tests, written with Pillow.

`make(root, {"train": {"a": 3, "b": 1}, "test": {"a": 1}})` writes
`root/train/a/00.png` ... with seeded random pixels and returns the pixels
written, by path relative to `root`, so that a test compares what a reader
returns with what is on disk.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image

EXTENSIONS = {"png": ".png", "jpeg": ".jpg", "bmp": ".bmp", "gif": ".gif"}
# Two classes, the head of two images, the tail of one.
SMALL = {"a": 2, "b": 1}
# Two classes of 3 and 2 training images, one test image each.
LAYOUT = {"train": {"a": 3, "b": 2}, "test": {"a": 1, "b": 1}}
_CHANNELS = {"L": 1, "RGB": 3, "RGBA": 4}


def pixels(mode: str, size, seed: int) -> np.ndarray:
    """Seeded uint8 pixels of an image of `mode` and `(height, width)`.

    Every channel value is a multiple of 51 (6 levels), so that an RGB image
    has at most 216 colors and a GIF or palette ("P") image stores it
    losslessly. "P" gives the RGB pixels that the palette image shows.
    """
    channels = _CHANNELS["RGB" if mode == "P" else mode]
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 6, (*size, channels)).astype(np.uint8) * 51
    return values[..., 0] if channels == 1 else values


def smooth(size, seed: int) -> np.ndarray:
    """Seeded uint8 RGB gradients `[H, W, 3]`: small JPEG errors."""
    rng = np.random.default_rng(seed)
    rows = np.linspace(0.0, 1.0, size[0])[:, None, None]
    cols = np.linspace(0.0, 1.0, size[1])[None, :, None]
    a, b, c = rng.uniform(40, 215, (3, 1, 1, 3))
    return np.round(a + (b - a) * rows * 0.5 + (c - a) * cols * 0.5).astype(
        np.uint8
    )


def write(path, fmt="png", mode="RGB", size=(6, 8), seed=0, frames=1):
    """Writes one image file and returns its pixels (as `pixels`).

    Args:
        path: the file; its folder is created.
        fmt: "png", "jpeg", "bmp" or "gif".
        mode: "L", "RGB", "RGBA" or "P" (stored as a palette image).
        size: `(height, width)`.
        seed: seeds the pixels (a JPEG gets `smooth` ones).
        frames: frames of a GIF; frame `k` has the pixels of `seed + k`.
    """
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if fmt == "jpeg":
        values = smooth(size, seed)
        if mode == "L":
            values = values[..., 1]
    else:
        values = pixels(mode, size, seed)
    image = _image(values, mode)
    kind = {"jpeg": "JPEG", "png": "PNG", "bmp": "BMP", "gif": "GIF"}[fmt]
    if frames > 1:
        rest = [
            _image(pixels(mode, size, seed + k), mode) for k in range(1, frames)
        ]
        image.save(path, kind, save_all=True, append_images=rest)
    else:
        image.save(path, kind)
    return values


def _image(values, mode):
    if mode == "P":
        return Image.fromarray(values, "RGB").quantize(256, dither=0)
    return Image.fromarray(values, mode)


def make(
    root, layout, fmt="png", mode="RGB", size=(6, 8), seed=0, modes=None
) -> dict:
    """Writes `root/<split>/<class>/<nn><ext>` and returns their pixels.

    Args:
        root: the dataset folder.
        layout: `{split folder: {class: number of images}}`.
        fmt, mode, size: of every image (see `write`).
        seed: the first image's seed; each later image takes the next.
        modes: optional `{class: mode}` overriding `mode` per class.

    Returns:
        `{path relative to root: uint8 pixels}`.
    """
    written = {}
    for split, classes in layout.items():
        for name, count in classes.items():
            for i in range(count):
                rel = os.path.join(split, name, f"{i:02d}{EXTENSIONS[fmt]}")
                written[rel] = write(
                    os.path.join(root, rel),
                    fmt,
                    (modes or {}).get(name, mode),
                    size,
                    seed + len(written),
                )
    return written


def name(root) -> str:
    """The dataset name of the folder `root`: `"folder:<root>"`."""
    return "folder:" + str(root)


def refusal(call, *args, **kwargs) -> str:
    """The message of the ValueError that `call` raises; checks that it is
    one line."""
    with pytest.raises(ValueError) as error:
        call(*args, **kwargs)
    message = str(error.value)
    assert "\n" not in message
    return message


def dataset_arrays(dataset):
    """`(images, labels)` numpy arrays of an unbatched `tf.data.Dataset`."""
    images, labels = [], []
    for image, label in dataset.as_numpy_iterator():
        images.append(image)
        labels.append(label)
    return np.stack(images), np.array(labels, np.int64)
