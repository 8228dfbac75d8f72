"""Tests of `folder:PATH` pipelines: `DatasetBuilder` batches, and the
Pillow reader where TensorFlow is not installed (the JAX backend)."""

import os
import subprocess
import sys

import numpy as np
import pytest

from la_keras.datasets import DatasetBuilder
from la_keras.datasets import dataset_builder
from la_keras.datasets import folder
from la_keras.datasets import preprocessing
from la_keras.datasets import shuffling
from tests.datasets import folders
from tests.launch import helpers

SMALL = folders.SMALL


def test_builder_batches_small_folder(tmp_path):
    folders.make(tmp_path, {"train": {"a": 5, "b": 3}, "test": SMALL})
    builder = DatasetBuilder(folders.name(tmp_path), "train", 4, training=True)
    assert builder.cached and builder.info.preprocessing == "cifar"
    assert builder.steps_per_epoch == 2
    batches = list(builder.build())
    assert len(batches) == 2
    for images, labels in batches:
        assert images.shape == (4, 6, 8, 3) and images.dtype == "float32"
        assert labels.dtype == "int64"
    # Evaluation: the images of `arrays`, in order, as x / 255 - 0.5.
    name = folders.name(tmp_path)
    evaluation = DatasetBuilder(name, "train", 3, training=False)
    got = np.concatenate([x for x, _ in evaluation.build()])
    images, _, _ = folder.arrays(name, "train")
    np.testing.assert_allclose(got, images / 255.0 - 0.5, atol=1e-6)


@pytest.mark.parametrize(
    "mode, size, augment",
    [
        ("RGB", (6, 8), "imagenet"),
        ("RGB", (66, 70), "auto"),
        ("L", (66, 70), "auto"),
    ],
)
def test_builder_imagenet_recipe(tmp_path, mode, size, augment):
    folders.make(
        tmp_path, {"train": SMALL, "test": SMALL}, mode=mode, size=size
    )
    for training in (True, False):
        builder = DatasetBuilder(
            folders.name(tmp_path),
            "test",
            3,
            training=training,
            augment=augment,
        )
        info = builder.info
        assert info.preprocessing == "imagenet"
        images, _ = next(iter(builder.build()))
        assert images.shape == (3, *info.image_shape)
        assert images.dtype == "float32"
        assert info.image_shape[:2] == size
        if mode == "L":  # gray repeated: the same value in every channel
            mean = np.array(preprocessing.IMAGENET_MEAN) * 255
            std = np.array(preprocessing.IMAGENET_STD) * 255
            values = images.numpy() * std + mean
            np.testing.assert_allclose(
                values.max(-1), values.min(-1), atol=1e-3
            )


def test_builder_streams_a_folder_too_big_to_cache(tmp_path, monkeypatch):
    folders.make(tmp_path, {"train": {"a": 5, "b": 3}, "test": SMALL})
    monkeypatch.setattr(dataset_builder, "FOLDER_CACHE_BYTES", 7 * 6 * 8 * 3)
    builder = DatasetBuilder(folders.name(tmp_path), "train", 4, training=True)
    assert not builder.cached
    assert builder.shuffle_buffer == shuffling.IMAGENET_SHUFFLE_BUFFER
    labels = np.concatenate([y for _, y in builder.build()])
    np.testing.assert_array_equal(np.bincount(labels), [5, 3])
    small = DatasetBuilder(folders.name(tmp_path), "test", 4, training=False)
    assert small.cached and small.shuffle_buffer is None


_NO_TENSORFLOW = """\
import sys
sys.modules["tensorflow"] = None
from la_keras.datasets import folder
images, labels, info = folder.arrays(
    sys.argv[1], "train", holdout_fraction=0.4, seed=3, skip_bad_images=True
)
assert "tensorflow" not in [m.split(".")[0] for m in sys.modules if sys.modules[m]]
print(images.shape, labels.tolist(), int(images.astype("int64").sum()))
print(info.class_names, info.skipped_images, info.priors.tolist())
"""


def test_arrays_need_no_tensorflow(tmp_path):
    folders.make(tmp_path, {"train": {"a": 4, "b": 3}, "test": SMALL}, "bmp")
    (tmp_path / "train" / "b" / "bad.png").write_bytes(b"")
    name = folders.name(tmp_path)
    result = subprocess.run(
        [sys.executable, "-c", _NO_TENSORFLOW, name],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=helpers.REPO),
    )
    assert result.returncode == 0, result.stderr[-2000:]
    images, labels, info = folder.arrays(
        name, "train", holdout_fraction=0.4, seed=3, skip_bad_images=True
    )
    assert result.stdout.splitlines() == [
        f"{images.shape} {labels.tolist()} {int(images.astype('int64').sum())}",
        f"{info.class_names} {info.skipped_images} {info.priors.tolist()}",
    ]
    assert images.shape == (4, 6, 8, 3)
