"""Tests of the TFDS-backed datasets, on real data when present, else mocks.

`cifar10` and `mnist` are real in ../shared/tfds; without it (and for
`cifar100`, `imagenet_lt`, `i_naturalist2018`, which cannot be downloaded
here) the loading code runs on `tfds.testing.mock_data`.
"""

import contextlib
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from la_keras import datasets
from la_keras import priors as priors_lib
from tests.conftest import shared_reference_dir
from tests.conftest import shared_tfds_dir
from tests.datasets import fakes

CIFAR10_LT = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def _reference(name):
    ref_dir = shared_reference_dir()
    if ref_dir is None:
        return None
    return np.loadtxt(os.path.join(ref_dir, f"{name}_base_probs.txt"))


@pytest.fixture(scope="module")
def real_data_dir():
    """The real TFDS data_dir, or None: tests then mock a balanced one."""
    return shared_tfds_dir()


def _fallback(data_dir, per_class):
    """A balanced TFDS mock when the real data is absent, else nothing."""
    if data_dir is not None:
        return contextlib.nullcontext()
    return fakes.balanced_tfds(per_class)


def _cifar10(data_dir):
    return _fallback(data_dir, {"train": 5000, "test": 1000})


@pytest.fixture(scope="module")
def cifar10_lt(real_data_dir):
    with _cifar10(real_data_dir):
        return datasets.load("cifar10_lt", "train", real_data_dir)


def test_cifar10_lt_counts_and_priors(real_data_dir, cifar10_lt):
    _, info = cifar10_lt
    np.testing.assert_array_equal(info.train_counts, CIFAR10_LT)
    assert info.num_examples == {"train": 12406, "test": 10000}
    assert info.num_classes == 10
    if real_data_dir is not None:  # Without data TFDS names them "0".."9".
        assert info.class_names[:2] == ["airplane", "automobile"]
    assert info.image_shape == (32, 32, 3)
    np.testing.assert_allclose(
        info.priors, priors_lib.from_counts(CIFAR10_LT), rtol=0, atol=1e-15
    )
    reference = _reference("cifar10-lt")
    if reference is not None:
        np.testing.assert_allclose(info.priors, reference, rtol=0, atol=1e-12)


@pytest.mark.slow
def test_cifar10_lt_training_pipeline_is_the_profile(real_data_dir):
    with _cifar10(real_data_dir):
        builder = datasets.DatasetBuilder(
            "cifar10_lt", "train", 128, training=True, data_dir=real_data_dir
        )
    counts = np.zeros(10, np.int64)
    steps = 0
    for images, labels in builder.build():
        steps += 1
        assert images.shape == (128, 32, 32, 3)
        assert images.dtype == tf.float32
        counts += np.bincount(labels.numpy(), minlength=10)
    assert steps == builder.steps_per_epoch == 12406 // 128
    # drop_remainder drops the 12406 - 96 * 128 = 118 last shuffled images.
    assert counts.sum() == 96 * 128
    assert np.all(counts <= CIFAR10_LT)
    assert np.all(counts >= np.array(CIFAR10_LT) - 118)


def test_cifar10_lt_is_deterministic(real_data_dir, cifar10_lt):
    # The first kept images: a prefix is enough and keeps the test fast.
    ds, _ = cifar10_lt
    with _cifar10(real_data_dir):
        again, _ = datasets.load("cifar10_lt", "train", real_data_dir)
    first = list(ds.take(300).as_numpy_iterator())
    second = list(again.take(300).as_numpy_iterator())
    for (x1, y1), (x2, y2) in zip(first, second, strict=True):
        np.testing.assert_array_equal(x1, x2)
        assert y1 == y2
    assert first[0][0].shape == (32, 32, 3) and first[0][0].dtype == np.uint8


def test_cifar10_lt_holdout_counts(real_data_dir):
    with _cifar10(real_data_dir):
        _, info = datasets.load(
            "cifar10_lt", "train", real_data_dir, holdout_fraction=0.1
        )
    holdout = np.array([500, 300, 180, 108, 65, 39, 23, 14, 8, 5])
    np.testing.assert_array_equal(
        info.train_counts, np.array(CIFAR10_LT) - holdout
    )
    assert info.num_examples["holdout"] == holdout.sum()


def test_cifar10_lt_seed_changes_selection_not_counts(
    real_data_dir, cifar10_lt
):
    with _cifar10(real_data_dir):
        ds, info = datasets.load("cifar10_lt", "train", real_data_dir, seed=3)
    np.testing.assert_array_equal(info.train_counts, CIFAR10_LT)
    first = [x.tobytes() for x, _ in cifar10_lt[0].take(50).as_numpy_iterator()]
    other = [x.tobytes() for x, _ in ds.take(50).as_numpy_iterator()]
    assert first != other


def test_cifar10_lt_ratio_and_step_profile(real_data_dir):
    with _cifar10(real_data_dir):
        _, info = datasets.load("cifar10_lt", "test", real_data_dir, ratio=10)
        _, step = datasets.load(
            "cifar10_lt", "test", real_data_dir, profile="step", ratio=10
        )
    np.testing.assert_array_equal(
        info.train_counts, priors_lib.exp_profile_counts(5000, 10, 10)
    )
    info = step
    np.testing.assert_array_equal(info.train_counts, [5000] * 5 + [500] * 5)


def test_cifar10_lt_profile_with_empty_class(real_data_dir):
    with _cifar10(real_data_dir):
        with pytest.raises(ValueError, match="leaves classes \\[9\\] with"):
            datasets.load("cifar10_lt", "train", real_data_dir, ratio=6000)


def test_cifar10_test_split_is_full(real_data_dir):
    with _cifar10(real_data_dir):
        ds, info = datasets.load("cifar10_lt", "test", real_data_dir)
        image, label = next(iter(ds))
    assert info.num_examples["test"] == 10000
    assert image.shape == (32, 32, 3) and label.dtype == tf.int64


def test_mnist_lt_grayscale(real_data_dir):
    data_dir = real_data_dir
    with _fallback(data_dir, {"train": 500, "test": 10}):
        builder = datasets.DatasetBuilder(
            "mnist_lt", "test", 16, training=False, data_dir=data_dir
        )
        images, _ = next(iter(builder.build()))
    info = builder.info
    n_max = 5421 if data_dir else 500
    np.testing.assert_array_equal(
        info.train_counts, priors_lib.exp_profile_counts(n_max, 10, 100)
    )
    assert info.image_shape == (28, 28, 1)
    assert images.shape == (16, 28, 28, 1)
    assert float(tf.reduce_min(images)) >= -0.5


def test_cifar100_lt_on_mock():
    with fakes.balanced_tfds({"train": 500, "test": 100}):
        ds, info = datasets.load("cifar100_lt", "train")
        first = list(ds.take(100).as_numpy_iterator())
    assert info.num_classes == 100 and len(info.class_names) == 100
    assert info.train_counts.sum() == 10847
    np.testing.assert_array_equal(
        info.train_counts, priors_lib.exp_profile_counts(500, 100, 100)
    )
    assert info.num_examples == {"train": 10847, "test": 10000}
    reference = _reference("cifar100-lt")
    if reference is not None:
        np.testing.assert_allclose(info.priors, reference, rtol=0, atol=1e-12)
    # Canonical order: position i has label i % 100 and pixels i % 256.
    labels = [y for _, y in first]
    np.testing.assert_array_equal(labels, range(100))
    assert all(np.all(x == y) for x, y in first)


def test_imagenet_lt_on_mock():
    with fakes.balanced_tfds({"train": 1, "validation": 2, "test": 3}):
        _, info = datasets.load("imagenet_lt", "train")
        holdout = datasets.DatasetBuilder("imagenet_lt", "holdout", 4, False)
        images, labels = next(iter(holdout.build()))
    assert info.num_classes == 1000
    assert info.num_examples == {"train": 1000, "holdout": 2000, "test": 3000}
    assert info.image_shape == (224, 224, 3)
    assert info.preprocessing == "imagenet"
    assert images.shape == (4, 224, 224, 3) and labels.dtype == tf.int64


def test_imagenet_lt_pipelines_on_random_mock():
    with tfds.testing.mock_data(num_examples=6):
        train = datasets.DatasetBuilder("imagenet_lt", "train", 3, True)
        test = datasets.DatasetBuilder("imagenet_lt", "test", 4, False)
        train_batches = [x.shape for x, _ in train.build()]
        test_batches = [x.shape for x, _ in test.build()]
    assert train.info.num_classes == 1000
    assert train.info.train_counts.sum() == 6
    assert train_batches == [(3, 224, 224, 3)] * 2
    assert test_batches == [(4, 224, 224, 3), (2, 224, 224, 3)]


def test_inaturalist2018_validation_is_test_on_mock():
    with fakes.balanced_tfds({"train": 1, "validation": 2, "test": 0}):
        _, info = datasets.load("inaturalist2018", "test")
        with pytest.raises(ValueError, match="Pass holdout_fraction > 0"):
            datasets.load("inaturalist2018", "holdout")
    assert info.num_classes == 8142
    assert info.num_examples == {"train": 8142, "test": 2 * 8142}
    assert info.preprocessing == "imagenet"


def test_missing_manual_download(tmp_path):
    with pytest.raises(FileNotFoundError) as error:
        datasets.load("imagenet_lt", "train", str(tmp_path))
    message = str(error.value)
    assert "ILSVRC2012_img_train.tar" in message
    assert os.path.join(str(tmp_path), "downloads", "manual") in message


def test_missing_data(tmp_path):
    with pytest.raises(FileNotFoundError, match="TFDS_DATA_DIR.*tfds build"):
        datasets.load("cifar100_lt", "train", str(tmp_path))


def test_unknown_tfds_name():
    with pytest.raises(ValueError, match="no dataset named 'not_a_dataset'"):
        datasets.load("tfds:not_a_dataset", "train")


def test_tfds_dataset_without_images(tmp_path):
    with pytest.raises(ValueError, match="not an image classification"):
        datasets.load("tfds:imdb_reviews", "train", str(tmp_path))


def test_any_tfds_dataset_with_profile(real_data_dir):
    with _fallback(real_data_dir, {"train": 500, "test": 10}):
        _, info = datasets.load(
            "tfds:mnist", "test", real_data_dir, ratio=4, profile="step"
        )
    n_max = 5421 if real_data_dir else 500
    np.testing.assert_array_equal(
        info.train_counts, [n_max] * 5 + [n_max // 4] * 5
    )
    assert info.name == "tfds:mnist"
    assert info.num_examples["test"] == (10000 if real_data_dir else 100)
