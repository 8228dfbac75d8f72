"""Tests of `load` and `names` that need no TFDS data."""

import numpy as np
import pytest
import tensorflow as tf

from la_keras import datasets
from la_keras import priors as priors_lib
from la_keras.datasets import DatasetInfo
from la_keras.datasets import synthetic


def _arrays(ds):
    images, labels = zip(*ds.as_numpy_iterator(), strict=True)
    return np.stack(images), np.array(labels)


def test_names():
    names = datasets.names()
    for name in [
        "cifar10_lt",
        "cifar100_lt",
        "imagenet_lt",
        "inaturalist2018",
        "mnist_lt",
        "cifar10-lt",
        "cifar100-lt",
        "test",
    ]:
        assert name in names
    assert "tfds:<name>" in datasets.names.__doc__


def test_synthetic_train():
    ds, info = datasets.load("test", "train")
    images, labels = _arrays(ds)
    assert isinstance(info, DatasetInfo)
    assert info.num_classes == 10
    assert images.shape == (46, 32, 32, 3) and images.dtype == np.uint8
    assert ds.element_spec[1].dtype == tf.int64
    np.testing.assert_array_equal(np.bincount(labels), synthetic.TRAIN_COUNTS)
    np.testing.assert_array_equal(info.train_counts, synthetic.TRAIN_COUNTS)
    assert info.train_counts.dtype == np.int64
    np.testing.assert_allclose(
        info.priors, priors_lib.from_counts(synthetic.TRAIN_COUNTS)
    )
    assert info.priors.dtype == np.float64
    assert info.num_examples == {"train": 46, "test": 20}
    assert info.image_shape == (32, 32, 3)
    assert info.preprocessing == "cifar"
    # Long-tailed: head class first, strictly more than the tail.
    assert info.train_counts[0] > info.train_counts[-1]


def test_synthetic_is_deterministic():
    first = _arrays(datasets.load("test", "train")[0])
    second = _arrays(datasets.load("test", "train")[0])
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_synthetic_test_split_is_balanced():
    ds, _ = datasets.load("test", "test")
    _, labels = _arrays(ds)
    np.testing.assert_array_equal(np.bincount(labels), [2] * 10)


def test_holdout_excluded_from_train():
    train, info = datasets.load("test", "train", holdout_fraction=0.25)
    holdout, _ = datasets.load("test", "holdout", holdout_fraction=0.25)
    train_images, train_labels = _arrays(train)
    holdout_images, holdout_labels = _arrays(holdout)
    train_set = {x.tobytes() for x in train_images}
    assert not train_set & {x.tobytes() for x in holdout_images}
    # Every class is in both; together they are the whole train split.
    assert set(holdout_labels) == set(range(10))
    np.testing.assert_array_equal(
        np.bincount(train_labels) + np.bincount(holdout_labels),
        synthetic.TRAIN_COUNTS,
    )
    np.testing.assert_array_equal(info.train_counts, np.bincount(train_labels))
    np.testing.assert_allclose(
        info.priors, priors_lib.from_counts(np.bincount(train_labels))
    )
    assert info.num_examples["holdout"] == len(holdout_labels)


def test_holdout_needs_fraction_without_own_split():
    with pytest.raises(ValueError, match="Pass holdout_fraction > 0"):
        datasets.load("test", "holdout")


def test_unknown_name_lists_known():
    with pytest.raises(ValueError, match="cifar10_lt.*tfds:<name>"):
        datasets.load("cifar10lt", "train")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(split="validation"), "argument `split`"),
        (dict(ratio=0.5), "argument `ratio`.*>= 1"),
        (dict(ratio=float("nan")), "argument `ratio`"),
        (dict(profile="linear"), "argument `profile`"),
        (dict(holdout_fraction=1.5), "argument `holdout_fraction`"),
        (dict(seed=-1), "argument `seed`"),
        (dict(ratio=10), "long-tailed already"),
    ],
)
def test_bad_arguments(kwargs, match):
    kwargs = {"split": "train", **kwargs}
    with pytest.raises(ValueError, match=match):
        datasets.load("test", **kwargs)


def test_bad_ratio_raised_before_reading_data(tmp_path):
    # The empty data_dir is never read: the ratio is refused first.
    with pytest.raises(ValueError, match="argument `ratio`"):
        datasets.load("cifar100_lt", "train", str(tmp_path), ratio=0.9)


def test_info_is_frozen_and_validated():
    _, info = datasets.load("test", "test")
    with pytest.raises(AttributeError):
        info.num_classes = 3
    with pytest.raises(ValueError, match="one entry per class"):
        DatasetInfo(
            name="x",
            num_classes=3,
            class_names=["a", "b", "c"],
            train_counts=[1, 2],
            priors=[0.5, 0.5],
            image_shape=(1, 1, 1),
            num_examples={},
            preprocessing="cifar",
        )
