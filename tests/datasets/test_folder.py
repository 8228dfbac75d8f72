"""Tests of `folder:PATH` datasets: layout, formats, channels, sizes, counts.

Bad files and layouts are in `test_folder_checks.py`, the index cache in
`test_folder_index.py`, `DatasetBuilder` and the reader without TensorFlow
in `test_folder_pipelines.py`; the folders are made by `folders.py`.
"""

import io
import os

import numpy as np
import pytest
from PIL import Image

from la_keras import datasets
from la_keras.datasets import folder
from la_keras.datasets import selection
from tests.datasets import folders

SMALL = folders.SMALL


def _rel(root, paths):
    return [os.path.relpath(p, root) for p in paths]


def _both(root, split="train", **kwargs):
    """`(Pillow images, tf.data images, labels, info)`; checks that the two
    readers give the same labels and shapes."""
    images, labels, info = folder.arrays(folders.name(root), split, **kwargs)
    dataset, tf_info = datasets.load(folders.name(root), split, **kwargs)
    tf_images, tf_labels = folders.dataset_arrays(dataset)
    np.testing.assert_array_equal(tf_labels, labels)
    assert tf_images.shape == images.shape == (len(labels), *info.image_shape)
    assert tf_info.image_shape == info.image_shape
    assert tf_info.class_names == info.class_names
    return images, tf_images, labels, info


# Layout.


@pytest.mark.parametrize("test_folder", ["test", "val", "validation"])
def test_test_split_folder(tmp_path, test_folder):
    folders.make(tmp_path, {"train": SMALL, test_folder: {"a": 1, "b": 2}})
    paths, labels, info = folder.describe(folders.name(tmp_path), "test")
    assert _rel(tmp_path, paths) == [
        f"{test_folder}/a/00.png",
        f"{test_folder}/b/00.png",
        f"{test_folder}/b/01.png",
    ]
    np.testing.assert_array_equal(labels, [0, 1, 1])
    assert info.num_examples == {"train": 3, "test": 3}


def test_test_folder_wins_over_val(tmp_path):
    folders.make(tmp_path, {"train": SMALL, "val": SMALL, "test": {"b": 1}})
    paths, labels, _ = folder.describe(folders.name(tmp_path), "test")
    assert _rel(tmp_path, paths) == ["test/b/00.png"]
    np.testing.assert_array_equal(labels, [1])


def test_class_names_are_sorted_train_folders(tmp_path):
    folders.make(
        tmp_path,
        {
            "train": {"zebra": 1, "Apple": 1, "mango": 2, ".hidden": 1},
            "test": {"mango": 1},
        },
    )
    _, labels, info = folder.describe(folders.name(tmp_path), "test")
    assert info.class_names == ["Apple", "mango", "zebra"]
    assert info.num_classes == 3
    np.testing.assert_array_equal(labels, [1])
    np.testing.assert_array_equal(info.train_counts, [1, 2, 1])


def test_nested_folders_upper_case_and_ignored_files(tmp_path):
    folders.make(tmp_path, {"train": SMALL, "test": SMALL})
    a = tmp_path / "train" / "a"
    nested = {
        "sub/x.PNG": "png",
        "sub/deeper/y.JPG": "jpeg",
        "sub/z.JPEG": "jpeg",
        "w.Bmp": "bmp",
        "v.GIF": "gif",
    }
    for rel, fmt in nested.items():
        folders.write(str(a / rel), fmt)
    for junk in (".DS_Store", "notes.txt", "Thumbs.db", "sub/desktop.ini"):
        (a / junk).write_bytes(b"\x00\x01 not an image")
    # Hidden files and folders with image extensions: macOS's AppleDouble
    # `._x.png` beside each copied file, a thumbnail cache.
    for hidden in ("._00.png", "sub/._x.PNG", ".thumbs/t.jpg"):
        (a / hidden).parent.mkdir(parents=True, exist_ok=True)
        (a / hidden).write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    paths, labels, info = folder.describe(folders.name(tmp_path), "train")
    found = sorted(_rel(tmp_path, paths))
    want = sorted(
        ["train/a/00.png", "train/a/01.png", "train/b/00.png"]
        + [f"train/a/{rel}" for rel in nested]
    )
    assert found == want
    np.testing.assert_array_equal(info.train_counts, [7, 1])
    assert info.skipped_images == ()


def test_a_leading_tilde_is_the_home_folder(tmp_path, monkeypatch):
    folders.make(tmp_path / "data", folders.LAYOUT)
    monkeypatch.setenv("HOME", str(tmp_path))
    paths, _, info = folder.describe("folder:~/data", "train")
    assert info.name == "folder:~/data"
    np.testing.assert_array_equal(info.train_counts, [3, 2])
    assert all(p.startswith(str(tmp_path / "data")) for p in paths)


def test_symlinks_followed_and_loop_ends(tmp_path):
    root, outside = tmp_path / "data", tmp_path / "elsewhere"
    folders.make(root, {"train": SMALL, "test": SMALL})
    folders.write(str(outside / "one.png"), seed=50)
    folders.write(str(outside / "more" / "two.png"), seed=51)
    folders.write(str(outside / "more" / "three.png"), seed=52)
    b = root / "train" / "b"
    os.symlink(outside / "one.png", b / "linked.png")
    os.symlink(outside / "more", b / "linked_folder")
    os.symlink(b, b / "loop")  # b/loop/loop/... must not be walked forever
    paths, labels, info = folder.describe(folders.name(root), "train")
    found = sorted(
        p for p, y in zip(_rel(root, paths), labels, strict=True) if y == 1
    )
    assert found == [
        "train/b/00.png",
        "train/b/linked.png",
        "train/b/linked_folder/three.png",
        "train/b/linked_folder/two.png",
    ]
    images, _, _ = folder.arrays(folders.name(root), "train")
    linked = images[_rel(root, paths).index("train/b/linked.png")]
    np.testing.assert_array_equal(
        linked, folders.pixels("RGB", (6, 8), seed=50)
    )


# Formats and channels.


@pytest.mark.parametrize("fmt", ["png", "bmp", "gif"])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_lossless_formats_read_exactly(tmp_path, fmt, mode):
    written = folders.make(tmp_path, {"train": SMALL, "test": SMALL}, fmt, mode)
    images, tf_images, labels, info = _both(tmp_path, "test")
    paths, _, _ = folder.describe(folders.name(tmp_path), "test")
    want = np.stack([written[p] for p in _rel(tmp_path, paths)])
    want = want.reshape(images.shape)
    assert info.image_shape == (6, 8, 1 if mode == "L" else 3)
    np.testing.assert_array_equal(images, want)
    np.testing.assert_array_equal(tf_images, want)


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg_near_pixels_written_and_readers_agree(tmp_path, mode):
    layout = {"train": SMALL, "test": SMALL}
    written = folders.make(tmp_path, layout, "jpeg", mode, size=(16, 12))
    images, tf_images, _, info = _both(tmp_path, "test")
    paths, _, _ = folder.describe(folders.name(tmp_path), "test")
    want = np.stack([written[p] for p in _rel(tmp_path, paths)])
    want = want.reshape(images.shape)
    assert info.image_shape == (16, 12, 1 if mode == "L" else 3)
    # JPEG is lossy: near the pixels written; both readers decode it with
    # libjpeg's accurate DCT (equal here; TensorFlow's and Pillow's libjpeg
    # builds may round chroma upsampling apart by a level elsewhere; the
    # fast DCT differed by up to 6).
    assert np.abs(images.astype(int) - want).max() <= 20
    assert np.abs(tf_images.astype(int) - images).max() <= 1


def test_gif_first_frame(tmp_path):
    folders.make(tmp_path, {"train": SMALL, "test": {"b": 1}}, "gif")
    path = tmp_path / "test" / "b" / "00.gif"
    first = folders.write(str(path), "gif", seed=70, frames=3)
    assert Image.open(path).n_frames == 3
    images, tf_images, _, _ = _both(tmp_path, "test")
    np.testing.assert_array_equal(images[0], first)
    np.testing.assert_array_equal(tf_images[0], first)


def _mixed(root, grays, colors, color_mode="RGB", fmt="png"):
    """Train: class a gray, class b `color_mode`; test one of each."""
    return folders.make(
        root,
        {"train": {"a": grays, "b": colors}, "test": {"a": 1, "b": 1}},
        fmt,
        modes={"a": "L", "b": color_mode},
    )


def _test_pixels(root, written):
    paths, _, _ = folder.describe(folders.name(root), "test")
    return [written[p] for p in _rel(root, paths)]


def test_gray_majority_converts_rgb_to_luma(tmp_path):
    written = _mixed(tmp_path, grays=3, colors=2)
    images, tf_images, _, info = _both(tmp_path, "test")
    assert info.image_shape == (6, 8, 1)
    gray, color = _test_pixels(tmp_path, written)
    luma = color.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    np.testing.assert_array_equal(images[0, ..., 0], gray)
    assert np.abs(images[1, ..., 0] - np.round(luma)).max() <= 1
    np.testing.assert_array_equal(tf_images, images)


def test_luma_of_both_readers_agree_on_every_red_green():
    from la_keras.datasets import preprocessing

    red, green = np.meshgrid(np.arange(256), np.arange(256), indexing="ij")
    rgb = np.stack([red, green, np.full_like(red, 77)], -1).astype(np.uint8)
    contents = io.BytesIO()
    Image.fromarray(rgb).save(contents, "PNG")
    luma = preprocessing.decode_image(contents.getvalue(), 1).numpy()
    want = np.asarray(Image.fromarray(rgb).convert("L"))
    np.testing.assert_array_equal(luma[..., 0], want)


@pytest.mark.parametrize("color_mode", ["RGB", "RGBA", "P"])
def test_color_majority_repeats_gray(tmp_path, color_mode):
    written = _mixed(tmp_path, grays=1, colors=2, color_mode=color_mode)
    images, tf_images, _, info = _both(tmp_path, "test")
    assert info.image_shape == (6, 8, 3)
    gray, color = _test_pixels(tmp_path, written)
    np.testing.assert_array_equal(images[0], np.repeat(gray[..., None], 3, -1))
    np.testing.assert_array_equal(images[1], color[..., :3])  # alpha dropped
    np.testing.assert_array_equal(tf_images, images)


def test_channel_tie_is_rgb_and_only_train_counts(tmp_path):
    _mixed(tmp_path, grays=2, colors=2)
    assert (
        folder.describe(folders.name(tmp_path), "train")[2].image_shape[-1] == 3
    )
    # Three gray training images outvote the color ones of the test split.
    root = tmp_path / "more_gray"
    folders.make(root, {"train": {"a": 3}}, mode="L")
    folders.make(root, {"train": {"b": 2}, "test": {"a": 3, "b": 3}})
    assert folder.describe(folders.name(root), "test")[2].image_shape[-1] == 1


def test_16_bit_gray_png(tmp_path):
    folders.make(tmp_path, {"train": SMALL, "test": SMALL}, mode="L")
    values = np.random.default_rng(3).integers(0, 65536, (6, 8))
    path = tmp_path / "test" / "a" / "00.png"
    Image.fromarray(values.astype(np.uint16)).save(path)
    images, tf_images, _, _ = _both(tmp_path, "test")
    np.testing.assert_array_equal(tf_images, images)
    assert np.abs(images[0, ..., 0] - values / 257.0).max() <= 1


# Sizes.


def test_mixed_sizes_refused_with_one_line(tmp_path):
    folders.make(tmp_path, {"train": SMALL, "test": SMALL})
    folders.write(str(tmp_path / "test" / "b" / "big.png"), size=(9, 5))
    with pytest.raises(ValueError) as error:
        folder.describe(folders.name(tmp_path), "train")
    message = str(error.value)
    assert "\n" not in message
    assert "train/a/00.png is 6x8" in message
    assert "test/b/big.png is 9x5" in message
    assert "--image_size" in message


@pytest.mark.parametrize(
    "image_size, shape", [(5, (5, 5)), ((4, 7), (4, 7)), ("4,7", (4, 7))]
)
def test_image_size_resizes_every_image(tmp_path, image_size, shape):
    folders.make(tmp_path, {"train": SMALL, "test": SMALL}, size=(12, 10))
    folders.write(str(tmp_path / "train" / "b" / "other.png"), size=(7, 9))
    for split in ("train", "test"):
        images, tf_images, _, info = _both(
            tmp_path, split, image_size=image_size
        )
        assert info.image_shape == (*shape, 3)
        assert info.resize == shape
        # Two bilinear antialiased resizes (Pillow's and TensorFlow's).
        assert np.abs(tf_images.astype(int) - images).max() <= 2
    paths, _, _ = folder.describe(
        folders.name(tmp_path), "test", image_size=shape
    )
    want = Image.open(paths[0]).resize(shape[::-1], Image.BILINEAR)
    np.testing.assert_array_equal(images[0], np.asarray(want))


@pytest.mark.parametrize("image_size", [0, (4, 0), "big", (1, 2, 3), True])
def test_bad_image_size_refused(tmp_path, image_size):
    folders.make(tmp_path, {"train": SMALL, "test": SMALL})
    with pytest.raises(ValueError, match="image_size"):
        folder.describe(folders.name(tmp_path), "train", image_size=image_size)


def test_recipe_by_size_unless_augment_says(tmp_path):
    layout = {"train": SMALL, "test": SMALL}
    folders.make(tmp_path / "small", layout)
    folders.make(tmp_path / "big", layout, size=(4, 65))

    def recipe(root, **kwargs):
        return folder.describe(folders.name(root), "test", **kwargs)[2]

    assert recipe(tmp_path / "small").preprocessing == "cifar"
    assert recipe(tmp_path / "big").preprocessing == "imagenet"
    assert recipe(tmp_path / "big", augment="cifar").preprocessing == "cifar"
    # Resized to at most 64 px: the CIFAR recipe again.
    assert recipe(tmp_path / "big", image_size=64).preprocessing == "cifar"
    with pytest.raises(ValueError, match="augment"):
        recipe(tmp_path / "small", augment="mixup")


# Counts, priors, holdout, order.


def test_counts_and_priors(tmp_path):
    counts = {"a": 6, "b": 3, "c": 1}
    folders.make(tmp_path, {"train": counts, "test": {"c": 2}}, size=(2, 2))
    _, labels, info = folder.describe(folders.name(tmp_path), "train")
    want = np.array([6, 3, 1], np.float64)
    np.testing.assert_array_equal(info.train_counts, [6, 3, 1])
    np.testing.assert_allclose(info.priors, want / want.sum(), rtol=1e-15)
    assert info.priors.dtype == np.float64
    np.testing.assert_array_equal(np.bincount(labels), [6, 3, 1])
    assert info.num_examples == {"train": 10, "test": 2}
    assert info.preprocessing == "cifar" and info.resize is None


def test_holdout_is_stratified_disjoint_and_seeded(tmp_path):
    counts = np.array([9, 5, 2])
    layout = {
        "train": dict(zip("abc", counts.tolist(), strict=True)),
        "test": SMALL,
    }
    folders.make(tmp_path, layout, size=(2, 2))
    name, sizes = folders.name(tmp_path), selection.holdout_sizes(counts, 0.3)
    np.testing.assert_array_equal(sizes, [3, 2, 1])

    def split(which, seed):
        paths, labels, info = folder.describe(
            name, which, holdout_fraction=0.3, seed=seed
        )
        return paths, labels, info

    train, train_labels, info = split("train", 5)
    holdout, holdout_labels, _ = split("holdout", 5)
    np.testing.assert_array_equal(np.bincount(holdout_labels), sizes)
    np.testing.assert_array_equal(info.train_counts, counts - sizes)
    np.testing.assert_allclose(
        info.priors, (counts - sizes) / (counts - sizes).sum(), rtol=1e-15
    )
    assert info.num_examples == {"train": 10, "test": 3, "holdout": 6}
    everything, _, _ = folder.describe(name, "train")
    assert not set(train) & set(holdout)
    assert sorted(train + holdout) == sorted(everything)
    assert split("train", 5)[0] == train  # reproducible from the seed
    other = split("train", 6)[0]
    assert other != train  # another seed: another order (or selection)
    with pytest.raises(ValueError, match="holdout_fraction"):
        folder.describe(name, "holdout")


def test_folder_refuses_ratio_and_profile(tmp_path):
    folders.make(tmp_path, {"train": SMALL, "test": SMALL})
    for options in (dict(ratio=10.0), dict(profile="step")):
        with pytest.raises(ValueError, match="ratio"):
            datasets.load(folders.name(tmp_path), "train", **options)


@pytest.mark.parametrize(
    "option",
    [
        dict(image_size=8),
        dict(skip_bad_images=True),
        dict(augment="imagenet"),
        dict(index_cache="x.json"),
    ],
)
def test_folder_options_refused_for_other_datasets(option):
    with pytest.raises(ValueError, match="only folder:<path>"):
        datasets.load("test", "train", **option)
