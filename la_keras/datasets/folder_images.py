"""Whether an image file of a folder dataset can be read, with Pillow.

`inspect_image` decodes a file once and returns its size, whether it is
grayscale and the SHA-256 of its bytes, or why it cannot be used: empty, not an image, truncated or
corrupt, or damaged where Pillow does not look but TensorFlow's decoders do
(a missing end, a PNG chunk's checksum, GIF color indices beyond the
palette), or a kind that TensorFlow cannot decode or decodes differently
(1-bit and color-palette BMPs, a GIF whose first frame is not the whole
image). A file it accepts is read alike by `folder.read_images` (Pillow)
and `folder.load` (TensorFlow). Sizes are those of the upright image (its
EXIF orientation applied, `orientation.py`), as both readers return it.
"""

from __future__ import annotations

import io
import zlib

import numpy as np

from la_keras.datasets import orientation
from la_keras.datasets.split_checks import digest

# What Pillow calls the formats TensorFlow's `decode_image` reads.
_FORMATS = {"PNG", "JPEG", "MPO", "BMP", "GIF"}
_GRAY_MODES = {"1", "L", "LA", "La", "I", "I;16", "I;16B", "I;16L", "F"}


def _bad(reason: str):
    return 0, 0, False, reason, None


def inspect_image(path: str):
    """`(height, width, gray, None, sha256)` of a readable image (upright),
    or `(0, 0, False, reason, None)`; decodes the whole image to find damage.

    The SHA-256 (hex) of the file's bytes finds the test images that are
    training images too (`split_checks`).
    """
    from PIL import Image

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:  # e.g. a dangling symlink
        return _bad(f"cannot be read: {e.strerror or e}")
    if not data:
        return _bad("empty file")
    try:
        with Image.open(io.BytesIO(data)) as image:
            kind, mode, (width, height) = image.format, image.mode, image.size
            turn = orientation.exif_orientation(image)  # before loading
            if kind not in _FORMATS:
                return _bad(
                    f"a {kind} image; la_keras reads PNG, JPEG, BMP, GIF"
                )
            if kind == "BMP" and mode in ("1", "P"):
                return _bad(
                    "a 1-bit or color-palette BMP, which TensorFlow cannot "
                    "decode (or decodes without its palette)"
                )
            if kind == "GIF" and _partial_frame(image):
                return _bad(
                    "a GIF whose first frame does not cover the image, which "
                    "TensorFlow and Pillow read differently"
                )
            if kind == "JPEG":  # decoded at 1/8 scale: all its data, faster
                image.draft(mode, (max(1, width // 8), max(1, height // 8)))
            image.load()
            if kind == "GIF" and _beyond_palette(image):
                return _bad("corrupt: color indices beyond its palette")
        damage = _unseen_damage(kind, data)
        if damage:
            return _bad(damage)
    except Image.UnidentifiedImageError:
        return _bad("not an image")
    except Image.DecompressionBombError as e:
        return _bad(str(e).split(".")[0])
    except (OSError, SyntaxError, ValueError) as e:
        return _bad(f"truncated or corrupt: {str(e) or type(e).__name__}")
    height, width = orientation.upright_size(height, width, turn)
    gray = mode in _GRAY_MODES or _gray_palette(image)
    return height, width, gray, None, digest(data)


def _unseen_damage(kind: str, data: bytes) -> str | None:
    """Why a file that Pillow reads is damaged where Pillow does not look
    but TensorFlow's decoders do (its end, a download cut short; a PNG
    chunk's checksum); None when it is whole."""
    if kind == "PNG":
        return _png_damage(data)
    if kind in ("JPEG", "MPO"):  # an end of image after the last scan
        whole = data.find(b"\xff\xd9", data.rfind(b"\xff\xda")) >= 0
    elif kind == "GIF":  # the last block's terminator, then the trailer
        whole = data.rstrip(b"\x00").endswith(b"\x00;")
    else:
        return None
    return None if whole else f"truncated: the {kind} file has no end"


def _png_damage(data: bytes) -> str | None:
    """A PNG's chunks up to IEND, each with its CRC, as libpng checks."""
    position = 8
    while position + 12 <= len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        end = position + 8 + length
        chunk = data[position + 4 : end]
        if end + 4 > len(data):
            break
        if zlib.crc32(chunk) != int.from_bytes(data[end : end + 4], "big"):
            return f"corrupt: a bad checksum in its {chunk[:4]!r} chunk"
        if chunk[:4] == b"IEND":
            return None
        position = end + 4
    return "truncated: the PNG file has no end"


def _partial_frame(image) -> bool:
    """Whether a GIF's first frame is not the whole image: TensorFlow
    returns the frame, Pillow the frame on the image's canvas."""
    width, height = image.size
    return any(tuple(t[1]) != (0, 0, width, height) for t in image.tile)


def _beyond_palette(image) -> bool:
    """Whether a GIF frame's color indices exceed its color table (a
    damaged GIF: Pillow shows it, TensorFlow refuses it)."""
    colors = len(image.getpalette() or []) // 3
    return bool(colors) and int(np.asarray(image).max()) >= colors


def _gray_palette(image) -> bool:
    """Whether a palette image ("P", e.g. a grayscale GIF) shows only grays."""
    if image.mode != "P":
        return False
    colors = np.asarray(image.getpalette() or [], np.uint8).reshape(-1, 3)
    return bool(len(colors)) and bool(np.all(colors == colors[:, :1]))
