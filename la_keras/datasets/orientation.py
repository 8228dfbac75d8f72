"""EXIF orientation: images of a folder dataset read upright.

A camera or phone stores its pixels as the sensor saw them and records how
to turn them upright in the EXIF Orientation tag (0x0112, values 1-8). Both
readers of a folder dataset apply it, as `PIL.ImageOps.exif_transpose`
does, before any resize:

- `exif_orientation` reads the tag from a Pillow image's EXIF data
  (`image.info["exif"]`: a JPEG's first APP1 "Exif" segment, a PNG's eXIf
  chunk before its image data) and `upright` turns a Pillow image.
- `decode_orientation` reads it from the file's bytes with TensorFlow
  string ops (no Python in the `tf.data` pipeline) and `apply_orientation`
  turns a decoded `[H, W, C]` image.

Both parse alike: the TIFF header's byte order, then the first entry of
IFD0 with the tag, if it holds one integer (SHORT, LONG, SSHORT or SLONG)
in 1-8. Anything else, no EXIF, a damaged or truncated segment, is
orientation 1 (as stored). XMP orientation (`tiff:Orientation`) is not read.
"""

from __future__ import annotations

import re
import struct

ORIENTATION_TAG = 0x0112
# Bytes per value of the TIFF types 1-12 (BYTE ... DOUBLE), as Pillow reads
# them: an entry's values are in it up to 4 bytes, else at an offset.
_SIZES = (0, 1, 1, 2, 4, 8, 1, 1, 2, 4, 8, 4, 8)
# The integer types an orientation is read from: SHORT, LONG, SSHORT,
# SLONG (1-8 reads the same signed or not). Pillow gives BYTE as bytes and
# RATIONAL, FLOAT as non-integers: `exif_transpose` leaves those alone.
_INTEGERS = (3, 4, 8, 9)
_EXIF_PREFIX = b"Exif\x00\x00"
# The largest TIFF payload parsed (a JPEG APP1 segment is at most 64 KiB).
_MAX_TIFF = 2**20
# Markers (JPEG) or chunks (PNG) looked at before giving up.
_MAX_SEGMENTS = 256


def orientation_from_tiff(data: bytes | None) -> int:
    """The orientation (1-8) in EXIF's TIFF data, 1 when absent or damaged.

    Args:
        data: the EXIF payload (a leading "Exif\\0\\0", once or twice, is
            skipped), or None.
    """
    if not isinstance(data, bytes):
        return 1
    data = re.sub(b"^(Exif\x00\x00){1,2}", b"", data)[:_MAX_TIFF]
    order = {b"II*\x00": "<", b"MM\x00*": ">"}.get(data[:4])
    if order is None or len(data) < 8:
        return 1
    (ifd,) = struct.unpack(order + "I", data[4:8])
    if ifd + 2 > len(data):
        return 1
    (count,) = struct.unpack(order + "H", data[ifd : ifd + 2])
    # Whole entries only: a truncated one is not read (as Pillow). The
    # first entry of the tag with its values in the data decides.
    for i in range(min(count, (len(data) - ifd - 2) // 12)):
        entry = data[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        tag, kind, number = struct.unpack(order + "HHI", entry[:8])
        if tag != ORIENTATION_TAG or not 1 <= kind <= 12 or number < 1:
            continue
        values = entry[8:12]
        if _SIZES[kind] * number > 4:
            (offset,) = struct.unpack(order + "I", values)
            if offset + _SIZES[kind] * number > len(data):
                continue
            values = data[offset : offset + 4]
        if kind not in _INTEGERS:
            return 1
        byteorder = "little" if order == "<" else "big"
        value = int.from_bytes(values[: _SIZES[kind]], byteorder)
        return value if 1 <= value <= 8 else 1
    return 1


def exif_orientation(image) -> int:
    """The orientation of an open Pillow image (call before `load`: a PNG's
    eXIf chunk counts only before its image data, as TensorFlow reads it)."""
    return orientation_from_tiff(image.info.get("exif"))


def upright(image, orientation: int):
    """A Pillow image turned by `orientation`, as `ImageOps.exif_transpose`."""
    from PIL import Image

    method = {
        2: Image.Transpose.FLIP_LEFT_RIGHT,
        3: Image.Transpose.ROTATE_180,
        4: Image.Transpose.FLIP_TOP_BOTTOM,
        5: Image.Transpose.TRANSPOSE,
        6: Image.Transpose.ROTATE_270,
        7: Image.Transpose.TRANSVERSE,
        8: Image.Transpose.ROTATE_90,
    }.get(orientation)
    return image if method is None else image.transpose(method)


def upright_size(height: int, width: int, orientation: int):
    """`(height, width)` of an image of that stored size once upright."""
    return (width, height) if orientation >= 5 else (height, width)


# TensorFlow: the same, in graph ops.


def _length(contents):
    import tensorflow as tf

    return tf.cast(tf.strings.length(contents), tf.int64)


def _read(contents, position, length):
    """int64 `[length]`: the bytes at `position`, zeros past the end."""
    import tensorflow as tf

    size = _length(contents)
    position = tf.clip_by_value(tf.cast(position, tf.int64), 0, size)
    piece = tf.strings.substr(contents, position, tf.cast(length, tf.int64))
    length = tf.cast(length, tf.int32)
    values = tf.io.decode_raw(piece, tf.uint8, fixed_length=length)
    return tf.cast(values, tf.int64)


def _number(values, big_endian, width=None):
    """The unsigned integer of the first `width` of int64 bytes `values`
    (the last axis), in that byte order."""
    import tensorflow as tf

    size = tf.shape(values, out_type=tf.int64)[-1]
    width = size if width is None else width
    index = tf.range(size, dtype=tf.int64)
    power = tf.where(big_endian, width - 1 - index, index)
    weights = tf.where(index < width, 256 ** tf.maximum(power, 0), 0)
    return tf.reduce_sum(values * weights, axis=-1)


def _walk(contents, first, step):
    """`(start, length)` of the first payload `step` finds, looking at each
    segment from `first`; length 0 when none."""
    import tensorflow as tf

    size = _length(contents)
    zero = tf.constant(0, tf.int64)

    def body(position, start, length, steps):
        found, stop, payload, payload_length, following = step(position)
        start = tf.where(found, payload, start)
        length = tf.where(found, payload_length, length)
        position = tf.where(found | stop, size, following)
        return position, start, length, steps + 1

    _, start, length, _ = tf.while_loop(
        lambda position, start, length, steps: (
            (position + 8 <= size) & (steps < _MAX_SEGMENTS)
        ),
        body,
        [tf.constant(first, tf.int64), zero, zero, zero],
    )
    return start, tf.clip_by_value(length, 0, size - start)


def _jpeg_segment(contents):
    """A JPEG's markers up to its first scan: the first APP1 "Exif" one."""
    import tensorflow as tf

    def step(position):
        head = _read(contents, position, 4)
        segment = head[2] * 256 + head[3]
        name = tf.strings.substr(contents, position + 4, 6)
        found = (head[1] == 0xE1) & tf.equal(name, _EXIF_PREFIX)
        found &= segment >= 8
        stop = (head[0] != 0xFF) | (head[1] == 0xDA) | (head[1] == 0xD9)
        stop |= segment < 2
        return found, stop, position + 10, segment - 8, position + 2 + segment

    return _walk(contents, 2, step)


def _png_chunk(contents):
    """A PNG's chunks up to its image data: the first eXIf one."""
    import tensorflow as tf

    def step(position):
        chunk = _number(_read(contents, position, 4), True)
        kind = tf.strings.substr(contents, position + 4, 4)
        found = tf.equal(kind, "eXIf")
        stop = tf.equal(kind, "IDAT") | tf.equal(kind, "IEND")
        return found, stop, position + 8, chunk, position + 12 + chunk

    return _walk(contents, 8, step)


def decode_orientation(contents):
    """int32 scalar: the EXIF orientation (1-8) of a JPEG's or PNG's bytes,
    as `orientation_from_tiff` reads it; 1 for other formats."""
    import tensorflow as tf

    is_png = tf.equal(tf.strings.substr(contents, 0, 8), b"\x89PNG\r\n\x1a\n")
    none = (tf.constant(0, tf.int64), tf.constant(0, tf.int64))
    start, length = tf.cond(
        tf.io.is_jpeg(contents),
        lambda: _jpeg_segment(contents),
        lambda: tf.cond(is_png, lambda: _png_chunk(contents), lambda: none),
    )
    tiff = tf.strings.substr(contents, start, tf.minimum(length, _MAX_TIFF))
    for _ in range(2):  # "Exif\0\0" once or twice first, as Pillow skips
        prefixed = tf.equal(tf.strings.substr(tiff, 0, 6), _EXIF_PREFIX)
        rest = tf.strings.substr(
            tiff, tf.minimum(tf.constant(6, tf.int64), _length(tiff)), _MAX_TIFF
        )
        tiff = tf.where(prefixed, rest, tiff)
    return tf.cast(_tiff_orientation(tiff), tf.int32)


def _tiff_orientation(tiff):
    """int64: `orientation_from_tiff` of a scalar string tensor."""
    import tensorflow as tf

    size = _length(tiff)
    head = tf.strings.substr(tiff, 0, 4)
    big = tf.equal(head, b"MM\x00*")
    ifd = _number(_read(tiff, 4, 4), big)
    valid = (big | tf.equal(head, b"II*\x00")) & (size >= 8)
    valid &= ifd + 2 <= size
    ifd = tf.where(valid, ifd, 0)
    count = tf.where(valid, _number(_read(tiff, ifd, 2), big), 0)
    count = tf.minimum(count, tf.maximum(size - ifd - 2, 0) // 12)
    # One row more than the entries, so that there is one to gather.
    rows = tf.reshape(_read(tiff, ifd + 2, 12 * (count + 1)), [-1, 12])
    kinds = _number(rows[:, 2:4], big)
    sizes = tf.gather(
        tf.constant(_SIZES, tf.int64), tf.where(kinds <= 12, kinds, 0)
    )
    numbers = _number(rows[:, 4:8], big)
    offsets = _number(rows[:, 8:12], big)
    inline = sizes * numbers <= 4
    match = (_number(rows[:, 0:2], big) == ORIENTATION_TAG) & (sizes > 0)
    match &= (numbers >= 1) & (inline | (offsets + sizes * numbers <= size))
    match &= tf.range(count + 1) < count
    first = tf.argmax(tf.cast(match, tf.int32), output_type=tf.int64)
    values = tf.where(
        inline[first], rows[first, 8:12], _read(tiff, offsets[first], 4)
    )
    value = _number(values, big, sizes[first])
    integer = tf.reduce_any(tf.equal(kinds[first], _INTEGERS))
    found = tf.reduce_any(match) & integer & (value >= 1) & (value <= 8)
    return tf.where(found, value, 1)


def apply_orientation(image, orientation):
    """A decoded `[H, W, C]` image turned by an int `orientation` (1-8), as
    `upright` (5-8 swap height and width)."""
    import tensorflow as tf

    swap = orientation >= 5
    image = tf.cond(swap, lambda: tf.transpose(image, [1, 0, 2]), lambda: image)
    # After the transpose, 5-8 are 1-4: none, left-right, both, top-bottom.
    flip = tf.where(swap, orientation - 4, orientation)
    image = tf.cond(
        (flip == 2) | (flip == 3), lambda: tf.reverse(image, [1]), lambda: image
    )
    return tf.cond(
        (flip == 3) | (flip == 4), lambda: tf.reverse(image, [0]), lambda: image
    )
