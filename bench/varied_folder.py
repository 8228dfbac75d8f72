"""A `folder:PATH` dataset of images as users' folders hold them.

    from bench.varied_folder import make_varied_folder
    counts = make_varied_folder("/tmp/photos", num_classes=12)

writes `root/train/<class>/*` (long-tailed: `max_per_class` images in the
first class down to `max_per_class / imbalance` in the last) and
`root/test/<class>/*` (`test_per_class` each, balanced). The images vary as
real photos do: sides from 60 to 1,000 px (log-uniform) with odd aspect
ratios; RGB, grayscale, CMYK and progressive JPEGs, palette ("P") and RGBA
PNGs, and "phone photo" JPEGs stored rotated with an EXIF Orientation tag
of 3, 6 or 8. The folder is a function of its arguments and `seed` alone.

Each class is learnable at any size and in gray: its own stripe angle and
frequency (relative to the image, so resizing keeps it), a shape (disc,
square or ring) and a pair of colours, under noise, a random phase and a
random placement. A phone photo is stored turned, as a camera stores it,
and read upright by its EXIF orientation (`la_keras.datasets.orientation`).
"""

from __future__ import annotations

import io
import json
import os

import numpy as np
from PIL import Image

# The kinds of file, with their share of the images (about).
KINDS = (
    ("rgb_jpeg", 0.30),
    ("gray_jpeg", 0.10),
    ("cmyk_jpeg", 0.08),
    ("progressive_jpeg", 0.12),
    ("palette_png", 0.12),
    ("rgba_png", 0.10),
    ("exif_photo", 0.18),
)
_EXTENSIONS = {"png": ".png", "jpeg": ".jpg"}
_ORIENTATION = 0x0112
# EXIF Orientation -> the transpose that stores an upright image as a camera
# does (a viewer applying the tag shows it upright again).
_STORED = {
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


def class_counts(num_classes: int, max_per_class: int, imbalance: float):
    """Exponential long tail: `max_per_class` down to `/ imbalance`, >= 1."""
    if num_classes < 2:
        raise ValueError(
            "Invalid value for argument `num_classes`. Expected at least 2. "
            f"Received: num_classes={num_classes}"
        )
    steps = np.arange(num_classes) / (num_classes - 1)
    counts = max_per_class * float(imbalance) ** -steps
    return [max(1, int(round(c))) for c in counts]


def _class_style(label: int, num_classes: int) -> dict:
    """What makes class `label` recognisable, spread over the classes."""
    golden = 0.6180339887
    hue = (label * golden) % 1.0
    return {
        "angle": np.pi * ((label * 0.37) % 1.0),
        "periods": 2.5 + 2.0 * (label % 4),
        "shape": ("disc", "square", "ring")[label % 3],
        "colours": (_hsv(hue, 0.8, 0.9), _hsv((hue + 0.45) % 1.0, 0.6, 0.35)),
    }


def _hsv(h: float, s: float, v: float) -> np.ndarray:
    rgb = Image.new("HSV", (1, 1), (int(h * 255), int(s * 255), int(v * 255)))
    return np.asarray(rgb.convert("RGB"), np.float32).reshape(3)


def _size(rng) -> tuple[int, int]:
    """`(height, width)`: long side log-uniform in [60, 1000], aspect up to
    3:1 either way, short side at least 60."""
    long_side = float(np.exp(rng.uniform(np.log(60), np.log(1000))))
    aspect = float(np.exp(rng.uniform(np.log(1.0), np.log(3.0))))
    short_side = max(60.0, long_side / aspect)
    long_side, short_side = int(long_side), int(short_side)
    return (
        (long_side, short_side)
        if rng.random() < 0.5
        else (short_side, long_side)
    )


def draw(label: int, num_classes: int, size, rng) -> np.ndarray:
    """uint8 RGB pixels `[H, W, 3]` of one image of class `label`."""
    style = _class_style(label, num_classes)
    height, width = size
    # Drawn on a grid of at most 256 px a side, then resized: fast at 1,000 px.
    scale = min(1.0, 256.0 / max(height, width))
    h, w = max(8, int(height * scale)), max(8, int(width * scale))
    y = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None]
    x = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, :]
    angle = style["angle"] + rng.normal(0.0, 0.08)
    phase = rng.uniform(0.0, 2 * np.pi)
    along = x * np.cos(angle) + y * np.sin(angle)
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * style["periods"] * along + phase)
    cy, cx = rng.uniform(0.3, 0.7, 2)
    radius = rng.uniform(0.15, 0.3)
    if style["shape"] == "disc":
        inside = (y - cy) ** 2 + (x - cx) ** 2 < radius**2
    elif style["shape"] == "square":
        inside = (np.abs(y - cy) < radius) & (np.abs(x - cx) < radius)
    else:
        distance = np.sqrt((y - cy) ** 2 + (x - cx) ** 2)
        inside = np.abs(distance - radius) < radius * 0.3
    first, second = style["colours"]
    tint = rng.normal(1.0, 0.08, 3).astype(np.float32)
    image = (first * tint) * stripes[..., None] + second * (
        1 - stripes[..., None]
    )
    image = np.where(inside[..., None], 255.0 - image * 0.7, image)
    image += rng.normal(0.0, 18.0, image.shape).astype(np.float32)
    pixels = np.clip(image, 0, 255).astype(np.uint8)
    picture = Image.fromarray(pixels, "RGB")
    if (h, w) != (height, width):
        picture = picture.resize((width, height), Image.BILINEAR)
    return np.asarray(picture)


def _kind(rng) -> str:
    names, shares = zip(*KINDS, strict=True)
    return str(rng.choice(names, p=np.asarray(shares) / sum(shares)))


def encode(pixels: np.ndarray, kind: str, rng) -> tuple[bytes, str]:
    """The file bytes of `pixels` as `kind`, and its format ("jpeg"/"png")."""
    image = Image.fromarray(pixels, "RGB")
    out = io.BytesIO()
    quality = int(rng.integers(70, 96))
    if kind == "rgb_jpeg":
        image.save(out, "JPEG", quality=quality)
    elif kind == "gray_jpeg":
        image.convert("L").save(out, "JPEG", quality=quality)
    elif kind == "cmyk_jpeg":
        image.convert("CMYK").save(out, "JPEG", quality=quality)
    elif kind == "progressive_jpeg":
        image.save(out, "JPEG", quality=quality, progressive=True)
    elif kind == "exif_photo":
        orientation = int(rng.choice(sorted(_STORED)))
        exif = Image.Exif()
        exif[_ORIENTATION] = orientation
        stored = image.transpose(_STORED[orientation])
        stored.save(out, "JPEG", quality=quality, exif=exif.tobytes())
    elif kind == "palette_png":
        palette = image.quantize(
            64, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
        )
        palette.save(out, "PNG", compress_level=3)
    elif kind == "rgba_png":
        # A soft vignette, as cut-outs and screenshots' alpha is smooth.
        h, w = pixels.shape[:2]
        ramp = np.hypot(
            *np.meshgrid(
                np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij"
            )
        )
        alpha = (255 - 60 * np.clip(ramp, 0, 1)).astype(np.uint8)
        rgba = np.concatenate([pixels, alpha[..., None]], axis=-1)
        Image.fromarray(rgba, "RGBA").save(out, "PNG", compress_level=3)
    else:
        raise ValueError(
            f"Invalid value for argument `kind`. Expected one of "
            f"{[name for name, _ in KINDS]}. Received: kind={kind}"
        )
    return out.getvalue(), "png" if kind.endswith("png") else "jpeg"


def make_varied_folder(
    root,
    num_classes: int = 12,
    max_per_class: int = 300,
    imbalance: float = 100.0,
    test_per_class: int = 20,
    seed: int = 0,
) -> dict:
    """Writes the folder (see the module docstring) and returns its summary.

    Args:
        root: the dataset folder; `train/` and `test/` are written in it
            (files already there are overwritten, others left alone: pass a
            new or empty folder).
        num_classes: classes, named `c00`, `c01`, ...
        max_per_class: training images of the first (largest) class.
        imbalance: largest / smallest class.
        test_per_class: test images of every class.
        seed: the folder is a function of the arguments and the seed.

    Returns:
        `{"train": [count per class], "test": [...], "kinds": {kind: files}}`,
        also written to `root/varied_folder.json`.
    """
    counts = {
        "train": class_counts(num_classes, max_per_class, imbalance),
        "test": [test_per_class] * num_classes,
    }
    kinds = {name: 0 for name, _ in KINDS}
    for split_index, split in enumerate(("train", "test")):
        for label, count in enumerate(counts[split]):
            folder = os.path.join(root, split, f"c{label:02d}")
            os.makedirs(folder, exist_ok=True)
            for n in range(count):
                rng = np.random.default_rng([seed, split_index, label, n])
                pixels = draw(label, num_classes, _size(rng), rng)
                kind = _kind(rng)
                data, fmt = encode(pixels, kind, rng)
                kinds[kind] += 1
                path = os.path.join(folder, f"{n:04d}{_EXTENSIONS[fmt]}")
                with open(path, "wb") as f:
                    f.write(data)
    summary = {**counts, "kinds": kinds}
    with open(os.path.join(root, "varied_folder.json"), "w") as f:
        json.dump(summary, f)
    return summary
