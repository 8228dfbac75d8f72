"""Tests of EXIF orientation: both readers of a folder dataset return the
pixels of `PIL.ImageOps.exif_transpose`, for JPEG and PNG, resized or not,
and treat missing or damaged EXIF data as orientation 1."""

import io
import os
import struct

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from PIL import ImageOps

from la_keras import datasets
from la_keras.datasets import DatasetBuilder
from la_keras.datasets import folder
from la_keras.datasets import orientation
from la_keras.datasets import preprocessing
from la_keras.datasets.folder_images import inspect_image
from tests.datasets import folders

STORED = (12, 16)  # (height, width) as stored: not square
ORIENTATIONS = range(1, 9)
# Both libjpegs decode alike up to a level (see test_folder.py).
JPEG_LEVELS = 1


def _values(fmt, size=STORED, seed=0):
    """Pixels with no symmetry: gradients (JPEG) or random levels (PNG)."""
    if fmt == "jpeg":
        return folders.smooth(size, seed)
    return folders.pixels("RGB", size, seed)


def _save(path, values, fmt="jpeg", exif=None):
    """Writes `values` as a JPEG or PNG file with `exif` (an `Image.Exif`,
    EXIF bytes or None) and returns its bytes."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    extra = {} if exif is None else {"exif": exif}
    Image.fromarray(values).save(path, fmt.upper(), **extra)
    with open(path, "rb") as f:
        return f.read()


def _exif(value):
    exif = Image.Exif()
    exif[orientation.ORIENTATION_TAG] = value
    return exif


def _pillow_upright(path):
    """The reference: `ImageOps.exif_transpose` of the file, RGB."""
    with Image.open(path) as image:
        return np.asarray(ImageOps.exif_transpose(image).convert("RGB"))


def _tf_orientations(contents):
    """`decode_orientation` of each bytes string, in one `tf.data` graph."""
    dataset = tf.data.Dataset.from_tensor_slices(tf.constant(contents))
    return list(dataset.map(orientation.decode_orientation).as_numpy_iterator())


def _jpeg_with_app1(payload, values=None):
    """A JPEG whose first segment is an APP1 of `payload` (any bytes)."""
    buffer = io.BytesIO()
    values = _values("jpeg") if values is None else values
    Image.fromarray(values).save(buffer, "JPEG")
    data = buffer.getvalue()
    segment = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return data[:2] + segment + data[2:]


def _tiff(order, entries, ifd=8):
    """EXIF TIFF data: a header, then IFD0 of `(tag, type, count, value
    bytes)` entries at `ifd`."""
    head = (b"II*\x00" if order == "<" else b"MM\x00*") + struct.pack(
        order + "I", ifd
    )
    body = struct.pack(order + "H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack(order + "HHI", tag, kind, count) + value.ljust(
            4, b"\0"
        )
    return head + b"\0" * (ifd - 8) + body + b"\0\0\0\0"


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
@pytest.mark.parametrize("value", ORIENTATIONS)
def test_both_readers_turn_as_pillow(tmp_path, fmt, value):
    path = str(tmp_path / f"image.{fmt}")
    values = _values(fmt)
    contents = _save(path, values, fmt, _exif(value))
    want = _pillow_upright(path)
    assert want.shape[:2] == (STORED if value < 5 else STORED[::-1])
    with Image.open(path) as image:
        assert orientation.exif_orientation(image) == value
    assert _tf_orientations([contents]) == [value]
    pillow = folder._read_one(path, "RGB", None)
    got = preprocessing.decode_image(tf.constant(contents), 3).numpy()
    np.testing.assert_array_equal(pillow, want)
    levels = JPEG_LEVELS if fmt == "jpeg" else 0
    assert got.shape == want.shape
    assert np.abs(got.astype(int) - want).max() <= levels
    # The test tells the orientations apart: every other one is further.
    with Image.open(path) as image:
        stored = image.convert("RGB")
        for other in ORIENTATIONS:
            turned = np.asarray(orientation.upright(stored, other))
            if other != value and turned.shape == want.shape:
                assert np.abs(turned.astype(int) - want).max() > 4 * levels
    height, width, _, reason, _ = inspect_image(path)
    assert reason is None and (height, width) == want.shape[:2]


@pytest.mark.parametrize("value", [1, 3, 6, 8])
def test_turned_before_resize_and_gray(tmp_path, value):
    path = str(tmp_path / "image.jpg")
    contents = _save(path, _values("jpeg"), "jpeg", _exif(value))
    upright = Image.fromarray(_pillow_upright(path))
    want = np.asarray(upright.resize((5, 7), Image.BILINEAR))
    got = preprocessing.decode_image(tf.constant(contents), 3, (7, 5))
    pillow = folder._read_one(path, "RGB", (7, 5))
    np.testing.assert_array_equal(pillow, want)
    # Two resize implementations (see test_folder.py).
    assert np.abs(got.numpy().astype(int) - want).max() <= 2
    gray = np.asarray(upright.convert("L"))
    tf_gray = preprocessing.decode_image(tf.constant(contents), 1).numpy()
    np.testing.assert_array_equal(folder._read_one(path, "L", None), gray)
    assert np.abs(tf_gray[..., 0].astype(int) - gray).max() <= JPEG_LEVELS


@pytest.mark.filterwarnings("ignore:Metadata Warning")  # two values
@pytest.mark.parametrize(
    "order, kind, value",
    [(">", 3, b"\x00\x06"), ("<", 4, b"\x06\0\0\0"), (">", 4, b"\0\0\0\x06"),
     ("<", 8, b"\x06\x00"), (">", 9, b"\0\0\0\x06"),
     ("<", 3, b"\x06\x00\x03\x00")],  # two values: the first
)  # fmt: skip
def test_byte_orders_and_integer_types_as_pillow(tmp_path, order, kind, value):
    other = (0x010F, 2, 4, b"abc\0")  # Make, before the orientation
    count = max(1, len(value) // {3: 2, 4: 4, 8: 2, 9: 4}[kind])
    tiff = _tiff(order, [other, (0x0112, kind, count, value)], ifd=12)
    path = str(tmp_path / "image.jpg")
    with open(path, "wb") as f:
        f.write(_jpeg_with_app1(b"Exif\x00\x00" + tiff))
    with Image.open(path) as image:
        assert image.getexif()[0x0112] == 6
        assert orientation.exif_orientation(image) == 6
    with open(path, "rb") as f:
        assert _tf_orientations([f.read()]) == [6]
    assert folder._read_one(path, "RGB", None).shape[:2] == STORED[::-1]


def test_no_orientation_read_as_stored(tmp_path):
    values = _values("jpeg")
    make = Image.Exif()
    make[0x010F] = "Camera"
    tiff = _tiff("<", [(0x0112, 3, 1, b"\x09\x00")])  # 9: not an orientation
    as_byte = _tiff("<", [(0x0112, 1, 1, b"\x06")])  # Pillow: bytes, ignored
    as_text = _tiff("<", [(0x0112, 2, 2, b"6\0")])  # ASCII: ignored too
    cases = {
        "none.jpg": _save(str(tmp_path / "none.jpg"), values),
        "make.jpg": _save(str(tmp_path / "make.jpg"), values, exif=make),
        "nine.jpg": _jpeg_with_app1(b"Exif\x00\x00" + tiff),
        "byte.jpg": _jpeg_with_app1(b"Exif\x00\x00" + as_byte),
        "text.jpg": _jpeg_with_app1(b"Exif\x00\x00" + as_text),
        "none.png": _save(str(tmp_path / "none.png"), _values("png"), "png"),
        "other.bmp": b"BM" + b"\0" * 64,
    }
    assert _tf_orientations(list(cases.values())) == [1] * len(cases)
    for name, contents in cases.items():
        if name.endswith(".bmp"):
            continue
        with Image.open(io.BytesIO(contents)) as image:
            assert orientation.exif_orientation(image) == 1
            stored = np.asarray(image.convert("RGB"))
            upright = ImageOps.exif_transpose(image).convert("RGB")
            np.testing.assert_array_equal(np.asarray(upright), stored)
        got = preprocessing.decode_image(tf.constant(contents), 3).numpy()
        assert got.shape[:2] == STORED


@pytest.mark.filterwarnings("ignore:Corrupt EXIF data")
def test_damaged_exif_is_orientation_1_in_both_readers(tmp_path):
    good = b"Exif\x00\x00" + _tiff(">", [(0x0112, 3, 1, b"\x00\x06")])
    payloads = [
        b"Exif\x00\x00",
        b"Exif\x00\x00MM\x00*",
        b"Exif\x00\x00MM\x00*\xff\xff\xff\xf0",  # IFD0 past the end
        b"Exif\x00\x00II*\x00\x08\x00\x00\x00\xff\xff",  # 65535 entries
        b"Exif\x00\x00" + bytes(range(256)) * 3,
        good[:-9],  # the orientation entry cut short
    ]
    for i, payload in enumerate(payloads):
        path = str(tmp_path / f"{i}.jpg")
        with open(path, "wb") as f:
            f.write(_jpeg_with_app1(payload))
        with Image.open(path) as image:
            assert orientation.exif_orientation(image) == 1, payload
        assert folder._read_one(path, "RGB", None).shape[:2] == STORED
        height, width, _, reason, _ = inspect_image(path)
        assert reason is None and (height, width) == STORED
    contents = [_jpeg_with_app1(p) for p in payloads]
    assert _tf_orientations(contents) == [1] * len(payloads)
    # An APP1 segment whose length runs past the end of the file: what is
    # there is read (the entry cut short, or whole).
    cuts = [_jpeg_with_app1(good)[:end] for end in (6, 30, 40)]
    assert _tf_orientations(cuts) == [1, 1, 6]


def test_parsers_agree_on_damaged_segments():
    good = b"Exif\x00\x00" + _tiff("<", [(0x0112, 3, 1, b"\x06\x00")])
    rng = np.random.default_rng(0)
    payloads = [good, b"Exif\x00\x00" + good]  # the prefix twice: skipped
    payloads += [good[:n] for n in range(len(good))]
    for _ in range(200):
        damaged = bytearray(good)
        for position in rng.integers(6, len(good), rng.integers(1, 4)):
            damaged[position] = rng.integers(0, 256)
        payloads.append(bytes(damaged))
    want = [orientation.orientation_from_tiff(p) for p in payloads]
    assert want[:2] == [6, 6] and 6 in want[2:] and 1 in want[2:]
    assert _tf_orientations([_jpeg_with_app1(p) for p in payloads]) == want


def _orientation_folder(root, fmt):
    """Train and test images of every orientation, stored so that they are
    all `STORED` once upright; returns `{relative path: upright pixels}`."""
    written = {}
    for split, count in (("train", 8), ("test", 4)):
        for i in range(count):
            value = ORIENTATIONS[(i + 4 * (split == "test")) % 8]
            size = STORED if value < 5 else STORED[::-1]
            rel = os.path.join(split, "ab"[i % 2], f"{i:02d}.{fmt}")
            path = os.path.join(root, rel)
            _save(path, _values(fmt, size, i), fmt, _exif(value))
            written[rel] = _pillow_upright(path)
    return written


@pytest.mark.parametrize("fmt", ["jpeg", "png"])
def test_folder_dataset_upright_in_both_readers(tmp_path, fmt):
    written = _orientation_folder(tmp_path, fmt)
    name = folders.name(tmp_path)
    levels = JPEG_LEVELS if fmt == "jpeg" else 0
    for split in ("train", "test"):
        paths, _, _ = folder.describe(name, split)
        want = np.stack([written[os.path.relpath(p, tmp_path)] for p in paths])
        images, _, info = folder.arrays(name, split)
        dataset, tf_info = datasets.load(name, split)
        tf_images, _ = folders.dataset_arrays(dataset)
        assert info.image_shape == tf_info.image_shape == (*STORED, 3)
        np.testing.assert_array_equal(images, want)
        assert np.abs(tf_images.astype(int) - want).max() <= levels
    # Resized: the upright images, in the tf.data pipeline and Pillow.
    images, _, info = folder.arrays(name, "test", image_size=(6, 5))
    dataset, _ = datasets.load(name, "test", image_size=(6, 5))
    tf_images, _ = folders.dataset_arrays(dataset)
    assert info.image_shape == (6, 5, 3)
    assert np.abs(tf_images.astype(int) - images).max() <= 2


def test_builder_batches_upright_images(tmp_path):
    _orientation_folder(tmp_path, "png")
    name = folders.name(tmp_path)
    builder = DatasetBuilder(name, "train", 3, training=False)
    got = np.concatenate([x for x, _ in builder.build()])
    images, _, _ = folder.arrays(name, "train")
    assert got.shape == (8, *STORED, 3)
    np.testing.assert_allclose(got, images / 255.0 - 0.5, atol=1e-6)


def test_upright_sizes_that_differ_are_refused(tmp_path):
    _save(str(tmp_path / "train/a/0.jpg"), _values("jpeg"), exif=_exif(1))
    _save(str(tmp_path / "train/b/0.jpg"), _values("jpeg"), exif=_exif(6))
    _save(str(tmp_path / "test/a/0.jpg"), _values("jpeg"))
    message = folders.refusal(folder.describe, folders.name(tmp_path), "test")
    assert "12x16" in message and "16x12" in message
