"""Tests of `folder:PATH` refusals: bad files and bad layouts.

Each refusal is a ValueError with a one-line message naming what is wrong.
"""

import os
import shutil

import numpy as np
import pytest
from PIL import Image

from la_keras import datasets
from la_keras.datasets import DatasetBuilder
from la_keras.datasets import folder
from tests.datasets import folders

LAYOUT = folders.LAYOUT


# Bad files: each writes one at `path`.


def _empty(path):
    path.write_bytes(b"")


def _text(path):
    path.write_text("name,label\nnot an image\n")


def _truncated_png(path):
    folders.write(str(path), "png", size=(16, 16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _cut_short(fmt, cut):
    """A writer of a file of `fmt` without its last `cut` bytes."""

    def write(path):
        if fmt == "jpeg":  # one that Pillow decodes without its last bytes
            image = Image.fromarray(folders.smooth((32, 32), 0))
            image.save(path, "JPEG", quality=90)
        else:
            folders.write(str(path), fmt, size=(16, 16))
        path.write_bytes(path.read_bytes()[:-cut])

    return write


def _png_bad_checksum(path):
    folders.write(str(path), "png")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # the CRC of the IEND chunk, which Pillow skips
    path.write_bytes(bytes(data))


def _gif_beyond_palette(path):
    # Four colors written, then the global color table cut to two: the
    # pixels of colors 2 and 3 point beyond it.
    values = np.arange(48).reshape(6, 8) % 4
    image = Image.fromarray(values.astype(np.uint8), "P")
    image.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0, 0, 0, 255])
    image.save(path, "GIF")
    data = bytearray(path.read_bytes())
    assert data[10] & 7 == 1  # a table of 2 ** (1 + 1) colors
    data[10] &= ~7
    path.write_bytes(bytes(data[:19] + data[25:]))


def _gif_partial_frame(path):
    folders.write(str(path), "gif")
    data = bytearray(path.read_bytes())
    data[6] += 1  # a canvas one pixel wider than the frame
    path.write_bytes(bytes(data))


def _corrupt_jpeg(path):
    # A stray marker in the middle of the compressed data (after the start
    # of scan): damage that the decoders see. Bytes flipped there are not:
    # libjpeg decodes them, warning only, in Pillow and TensorFlow alike.
    folders.write(str(path), "jpeg", size=(32, 32))
    data = bytearray(path.read_bytes())
    middle = (data.find(b"\xff\xda") + len(data)) // 2
    data[middle : middle + 2] = b"\xff\x4a"
    path.write_bytes(bytes(data))


def _dangling_symlink(path):
    os.symlink(path.parent / "gone.png", path)


def _tiff(path):
    Image.fromarray(folders.pixels("RGB", (6, 8), 0)).save(path, "TIFF")


def _palette_bmp(path):
    folders.write(str(path), "bmp", mode="P")


# kind: (writer, file name, reason named, whether TensorFlow fails too).
BAD = {
    "empty": (_empty, "bad.png", "empty file", True),
    "text": (_text, "bad.png", "not an image", True),
    "truncated_png": (_truncated_png, "bad.png", "truncated or corrupt", True),
    "corrupt_jpeg": (_corrupt_jpeg, "bad.jpg", "truncated or corrupt", True),
    "dangling_symlink": (
        _dangling_symlink,
        "bad.png",
        "cannot be read: No such file",
        True,
    ),
    # Cut short by a few bytes (an interrupted download): Pillow decodes
    # them, TensorFlow does not.
    "png_without_end": (
        _cut_short("png", 12),
        "bad.png",
        "truncated",
        True,
    ),
    "jpeg_without_end": (
        _cut_short("jpeg", 2),
        "bad.jpeg",
        "truncated",
        True,
    ),
    "gif_without_end": (
        _cut_short("gif", 2),
        "bad.gif",
        "truncated",
        True,
    ),
    "png_bad_checksum": (
        _png_bad_checksum,
        "bad.png",
        "corrupt: a bad checksum",
        True,
    ),
    "gif_beyond_palette": (
        _gif_beyond_palette,
        "bad.gif",
        "corrupt: color indices beyond",
        True,
    ),
    # TensorFlow reads the frame alone, Pillow the frame on its canvas.
    "gif_partial_frame": (
        _gif_partial_frame,
        "bad.gif",
        "a GIF whose first frame",
        False,
    ),
    "tiff_named_png": (_tiff, "bad.png", "a TIFF image; la_keras reads", True),
    # TensorFlow reads it, but as gray palette indices: wrong pixels.
    "palette_bmp": (
        _palette_bmp,
        "bad.bmp",
        "a 1-bit or color-palette BMP",
        False,
    ),
}


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_file_refused_then_skipped(tmp_path, kind):
    folders.make(tmp_path, LAYOUT)
    write, file_name, reason, tf_fails = BAD[kind]
    bad = tmp_path / "train" / "a" / file_name
    write(bad)
    name = folders.name(tmp_path)
    message = folders.refusal(datasets.load, name, "train")
    assert f"has 1 unreadable image file: {bad} ({reason}" in message
    assert "skip_bad_images" in message
    assert folders.refusal(folder.arrays, name, "test") == message
    assert _tf_fails(bad) == tf_fails  # what training would have met

    dataset, info = datasets.load(name, "train", skip_bad_images=True)
    assert info.skipped_images == (str(bad),)
    np.testing.assert_array_equal(info.train_counts, [3, 2])
    images, labels = folders.dataset_arrays(dataset)  # no decode error
    assert images.shape == (5, 6, 8, 3)
    np.testing.assert_array_equal(np.bincount(labels), [3, 2])
    arrays, _, _ = folder.arrays(name, "train", skip_bad_images=True)
    np.testing.assert_array_equal(arrays, images)


def _tf_fails(path) -> bool:
    import tensorflow as tf

    try:
        contents = tf.io.read_file(str(path))
        tf.io.decode_image(contents, channels=3, expand_animations=False)
    except tf.errors.OpError:
        return True
    return False


def test_every_bad_file_counted_first_named(tmp_path):
    folders.make(tmp_path, LAYOUT)
    bad = [tmp_path / "test" / "b" / "x.png"]
    bad += [tmp_path / "train" / "b" / f"{i}.gif" for i in range(4)]
    for path in bad:
        _empty(path)
    message = folders.refusal(folder.describe, folders.name(tmp_path), "train")
    assert "has 5 unreadable image files: " in message
    assert f"{bad[0]} (empty file)" in message  # sorted: test/ first
    assert "and 2 more" in message
    paths, labels, info = folder.describe(
        folders.name(tmp_path), "test", skip_bad_images=True
    )
    assert sorted(info.skipped_images) == sorted(map(str, bad))
    assert [os.path.basename(p) for p in paths] == ["00.png", "00.png"]
    np.testing.assert_array_equal(info.train_counts, [3, 2])


def test_class_of_bad_files_refused_even_skipping(tmp_path):
    folders.make(tmp_path, LAYOUT)
    shutil.rmtree(tmp_path / "train" / "b")
    for i in range(2):
        _text(_mkdir(tmp_path / "train" / "b" / str(i)) / f"{i}.png")
    message = folders.refusal(
        folder.describe, folders.name(tmp_path), "train", skip_bad_images=True
    )
    assert "train/b: every image of the class is unreadable" in message


def _mkdir(path):
    os.makedirs(path)
    return path


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda r: _mkdir(r / "train" / "c"), "/train/c holds no images"),
        (
            lambda r: _text(_mkdir(r / "train" / "c") / "notes.txt"),
            "/train/c holds no images",
        ),
        (
            lambda r: _mkdir(r / "test" / "c"),
            "/test has class folders that train/ lacks: c;",
        ),
        (lambda r: shutil.rmtree(r), ": no such folder."),
        (lambda r: shutil.rmtree(r / "train"), " has no train/ folder"),
        (lambda r: shutil.rmtree(r / "test"), " has no test split"),
        (lambda r: shutil.rmtree(r / "train" / "a"), "/test has class folders"),
        (
            lambda r: [shutil.rmtree(r / "train" / c) for c in "ab"],
            "/train has no class folders",
        ),
        (
            lambda r: [shutil.rmtree(r / "test" / c) for c in "ab"],
            "/test has no class folders",
        ),
    ],
)
def test_bad_layout_refused(tmp_path, change, expected):
    root = tmp_path / "data"
    folders.make(root, LAYOUT)
    change(root)
    message = folders.refusal(datasets.load, folders.name(root), "train")
    assert message.startswith(folders.name(root))
    assert expected in message
    assert (
        folders.refusal(DatasetBuilder, folders.name(root), "train", 2, True)
        == message
    )


def test_test_split_may_lack_a_class(tmp_path):
    folders.make(tmp_path, {"train": {"a": 1, "b": 1}, "test": {"b": 2}})
    _, labels, info = folder.describe(folders.name(tmp_path), "test")
    np.testing.assert_array_equal(labels, [1, 1])
    assert info.num_classes == 2


def test_jpeg_named_png_is_read(tmp_path):
    folders.make(tmp_path, LAYOUT)
    path = tmp_path / "test" / "b" / "00.png"
    Image.fromarray(folders.smooth((6, 8), 1)).save(path, "JPEG")
    images, _, info = folder.arrays(folders.name(tmp_path), "test")
    assert info.skipped_images == ()
    dataset, _ = datasets.load(folders.name(tmp_path), "test")
    tf_images, _ = folders.dataset_arrays(dataset)
    # Two libjpeg builds (see test_folder.py's JPEG test): a level apart.
    assert np.abs(tf_images.astype(int) - images).max() <= 1
