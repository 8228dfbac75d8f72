"""`load` checks the labels of the split it builds lie in [0, num_classes)."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from la_keras import datasets
from la_keras.datasets import registry
from la_keras.datasets import synthetic
from tests.datasets import fakes


def _with_labels(split, labels):
    """The synthetic source, with `split` holding `labels` (zero images)."""
    source = synthetic.make_source()
    if split == "train":
        images = np.zeros([len(labels), 32, 32, 3], np.uint8)
        return dataclasses.replace(
            source,
            train_labels=lambda: np.asarray(labels),
            read_train=lambda positions: tf.data.Dataset.from_tensor_slices(
                (images, np.asarray(labels))
            ),
        )
    images = np.zeros([len(labels), 32, 32, 3], np.uint8)
    return dataclasses.replace(
        source,
        other_splits={
            **source.other_splits,
            split: lambda: tf.data.Dataset.from_tensor_slices(
                (images, np.asarray(labels, np.int64))
            ),
        },
        other_sizes={**source.other_sizes, split: lambda: len(labels)},
        other_labels={**source.other_labels, split: lambda: np.asarray(labels)},
    )


@pytest.fixture
def fake_source(monkeypatch):
    """Makes `load("test", ...)` read a source with the labels given."""

    def install(split, labels):
        source = _with_labels(split, labels)
        monkeypatch.setattr(registry, "_source", lambda *args: source)

    return install


def test_test_split_label_equal_to_num_classes(fake_source):
    fake_source("test", [0, 3, 10, 9, 10])
    # The train split is fine and loads.
    _, info = datasets.load("test", "train")
    assert info.num_examples["test"] == 5
    with pytest.raises(ValueError) as error:
        datasets.load("test", "test")
    message = str(error.value)
    assert "split 'test' of dataset 'test'" in message
    assert "[0, 10)" in message and "Found 2 out of range" in message
    assert "values [10]" in message
    with pytest.raises(ValueError, match="split 'test' of dataset 'test'"):
        datasets.DatasetBuilder("test", "test", 4, training=False)


def test_own_holdout_split_is_checked(fake_source):
    fake_source("holdout", [1, -1, 12])
    with pytest.raises(
        ValueError, match="split 'holdout'.*values \\[-1, 12\\]"
    ):
        datasets.load("test", "holdout")


def test_train_labels_are_checked(fake_source):
    fake_source("train", [0, 1, 11, 2])
    for split in ("train", "test"):
        with pytest.raises(ValueError, match="split 'train'.*values \\[11\\]"):
            datasets.load("test", split)


def test_tfds_test_split_label_equal_to_num_classes():
    with fakes.balanced_tfds(
        {"train": 100, "test": 2}, last_label={"test": 10}
    ):
        _, info = datasets.load("cifar10_lt", "train")
        with pytest.raises(
            ValueError,
            match="split 'test' of dataset 'cifar10_lt'.*Found 1 out of range, "
            "with values \\[10\\]",
        ):
            datasets.load("cifar10_lt", "test")
    assert info.train_counts[-1] == 1


def test_tfds_own_holdout_split_is_checked():
    per_class = {"train": 1, "validation": 1, "test": 1}
    with fakes.balanced_tfds(per_class, last_label={"validation": 1000}):
        _, info = datasets.load("imagenet_lt", "test")
        with pytest.raises(
            ValueError, match="split 'holdout' of dataset 'imagenet_lt'"
        ):
            datasets.load("imagenet_lt", "holdout")
