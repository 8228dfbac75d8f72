"""Tests of the official release's TFRecord format (`cifar10-lt`, ...)."""

import os

import numpy as np
import pytest
import tensorflow as tf

from la_keras import priors as priors_lib
from la_keras.datasets import load
from la_keras.datasets import official
from tests.datasets import fakes

CIFAR10_LT = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]
_images = fakes.official_images


def _load(split, directory, **kwargs):
    return load(
        "cifar10-lt",
        split,
        str(directory),
        expected_examples=fakes.OFFICIAL_SIZES,
        **kwargs,
    )


def test_records_read_back_byte_identical(official_dir):
    ds, info = _load("train", official_dir)
    images, labels = zip(*ds.as_numpy_iterator(), strict=True)
    np.testing.assert_array_equal(np.stack(images), _images(8, 0))
    np.testing.assert_array_equal(labels, [0, 1, 0, 2, 0, 9, 1, 0])
    assert ds.element_spec[0].shape == (32, 32, 3)
    assert ds.element_spec[0].dtype == tf.uint8
    assert ds.element_spec[1].dtype == tf.int64
    np.testing.assert_array_equal(
        info.train_counts, [4, 2, 1, 0, 0, 0, 0, 0, 0, 1]
    )
    assert info.num_examples == {"train": 8, "test": 10}
    assert info.class_names[0] == "airplane"
    assert info.preprocessing == "cifar"

    test_ds, _ = _load("test", official_dir)
    test_images = np.stack([x for x, _ in test_ds.as_numpy_iterator()])
    np.testing.assert_array_equal(test_images, _images(10, 1))


def test_priors_default_to_exp_100(official_dir):
    _, info = _load("train", official_dir)
    np.testing.assert_allclose(
        info.priors, priors_lib.from_counts(CIFAR10_LT), atol=1e-15
    )


def test_priors_from_base_probs_file(official_dir):
    expected = priors_lib.from_counts(np.arange(1, 11))
    priors_lib.save_txt(official_dir / "cifar10-lt_base_probs.txt", expected)
    _, info = _load("train", official_dir)
    np.testing.assert_allclose(info.priors, expected, atol=1e-15)


def test_holdout_slice_excluded_from_train(official_dir):
    train, info = _load("train", official_dir, holdout_fraction=0.5)
    holdout, _ = _load("holdout", official_dir, holdout_fraction=0.5)
    train_images = [x.tobytes() for x, _ in train.as_numpy_iterator()]
    holdout_images = [x.tobytes() for x, _ in holdout.as_numpy_iterator()]
    assert len(holdout_images) == info.num_examples["holdout"] == 3
    assert len(train_images) == info.num_examples["train"] == 5
    assert not set(train_images) & set(holdout_images)
    # With a holdout the priors follow the remaining training counts.
    np.testing.assert_allclose(info.priors, info.train_counts / 5)


def test_cifar100_file_names_and_classes(tmp_path):
    official.write_tfrecord(
        str(tmp_path / "cifar100-lt_train.tfrecord"), _images(3, 0), [0, 5, 99]
    )
    official.write_tfrecord(
        str(tmp_path / "cifar100_test.tfrecord"), _images(2, 1), [1, 2]
    )
    _, info = load(
        "cifar100-lt",
        "test",
        str(tmp_path),
        expected_examples={"train": 3, "test": 2},
    )
    assert info.num_classes == 100
    assert len(info.class_names) == 100
    assert info.class_names[:2] == ["apple", "aquarium_fish"]
    assert info.class_names[-1] == "worm"
    assert info.num_examples == {"train": 3, "test": 2}
    assert info.priors.sum() == pytest.approx(1.0)


def _write_one_record(path, feature):
    """A TFRecord file at `path` of one example of the features `feature`."""
    with tf.io.TFRecordWriter(str(path)) as writer:
        example = tf.train.Example(features=tf.train.Features(feature=feature))
        writer.write(example.SerializeToString())


def test_png_records_are_refused(official_dir):
    png = tf.io.encode_png(_images(1, 0)[0]).numpy()
    _write_one_record(
        official_dir / "cifar10-lt_train.tfrecord",
        {
            "image/encoded": tf.train.Feature(
                bytes_list=tf.train.BytesList(value=[png])
            ),
            "image/class/label": tf.train.Feature(
                int64_list=tf.train.Int64List(value=[0])
            ),
        },
    )
    with pytest.raises(ValueError, match="raw uint8 32x32x3 bytes"):
        _load("train", official_dir)


def test_wrong_feature_names_are_refused(official_dir):
    _write_one_record(
        official_dir / "cifar10_test.tfrecord",
        {"label": tf.train.Feature(int64_list=tf.train.Int64List(value=[0]))},
    )
    with pytest.raises(ValueError, match="'image/class/label' \\(int64\\)"):
        _load("test", official_dir)


def test_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="cifar10-lt_train.tfrecord"):
        load("cifar10-lt", "train", str(tmp_path))
    with pytest.raises(ValueError, match="argument `data_dir`"):
        load("cifar10-lt", "train")


def test_takes_no_profile(official_dir):
    with pytest.raises(ValueError, match="long-tailed already"):
        _load("train", official_dir, ratio=10)


def test_write_refuses_wrong_images(tmp_path):
    with pytest.raises(ValueError, match="argument `images`"):
        official.write_tfrecord(
            os.path.join(tmp_path, "x.tfrecord"), np.zeros([1, 28, 28, 1]), [0]
        )
