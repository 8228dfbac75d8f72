"""Damaged official TFRecord and prior files fail at load, naming the file.

`TFRecordDataset` alone stops without an error at a record cut off by a
truncated copy, and `decode_raw` fails on a bad record only when training
reaches its batch; `load` reads both files through first.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from la_keras import priors as priors_lib
from la_keras.datasets import DatasetBuilder
from la_keras.datasets import load
from la_keras.datasets import official
from tests.conftest import shared_reference_dir
from tests.datasets import fakes

TRAIN = "cifar10-lt_train.tfrecord"
TEST = "cifar10_test.tfrecord"


def _load(directory, split="train", sizes=fakes.OFFICIAL_SIZES):
    return load("cifar10-lt", split, str(directory), expected_examples=sizes)


def _example(image_bytes, label):
    return tf.train.Example(
        features=tf.train.Features(
            feature={
                official.IMAGE_KEY: tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[image_bytes])
                ),
                official.LABEL_KEY: tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[label])
                ),
            }
        )
    ).SerializeToString()


def _rewrite_train(directory, index, record):
    """Replaces record `index` of the train file with serialized `record`."""
    path = str(directory / TRAIN)
    records = [r.numpy() for r in tf.data.TFRecordDataset(path)]
    records[index] = record
    with tf.io.TFRecordWriter(path) as writer:
        for r in records:
            writer.write(r)
    return path


def _record_ends(path):
    """Byte offsets where each record of an intact file ends."""
    sizes = [len(r.numpy()) + 16 for r in tf.data.TFRecordDataset(path)]
    return np.cumsum(sizes)


def test_intact_files_load(official_dir):
    _, info = _load(official_dir)
    assert info.num_examples == fakes.OFFICIAL_SIZES


@pytest.mark.parametrize(
    "cut, match",
    [
        (1000, "truncated: record 5 is cut off after 1000 of its 3"),
        # Less than a record header: TFRecordDataset stops there silently.
        (7, "7 bytes after its last whole record are no record"),
    ],
)
def test_truncated_mid_record(official_dir, cut, match):
    path = official_dir / TRAIN
    data = path.read_bytes()
    path.write_bytes(data[: _record_ends(str(path))[4] + cut])
    with pytest.raises(ValueError) as error:
        _load(official_dir)
    message = str(error.value)
    assert str(path) in message and "split 'train'" in message
    assert match in message
    assert "(5 whole records)" in message


def test_truncated_at_a_record_boundary(official_dir):
    path = official_dir / TRAIN
    path.write_bytes(path.read_bytes()[: _record_ends(str(path))[6]])
    with pytest.raises(ValueError, match=f"{path}.*: 7 records, expected 8"):
        _load(official_dir)


def test_official_sizes_by_default(official_dir):
    with pytest.raises(ValueError, match="8 records, expected 12406"):
        load("cifar10-lt", "train", str(official_dir))
    with pytest.raises(ValueError, match="10 records, expected 10000"):
        _load(official_dir, sizes={"train": 8})


def test_fewer_records_than_stated(official_dir):
    with pytest.raises(
        ValueError, match=f"{official_dir / TEST}.*10 records, expected 11"
    ):
        _load(official_dir, sizes={"train": 8, "test": 11})


@pytest.mark.parametrize(
    "garbage, match",
    [
        (b"garbage!" * 8, "record 8 is corrupt \\(corrupted record at"),
        (b"xy", "2 bytes after its last whole record are no record"),
    ],
)
def test_garbage_appended(official_dir, garbage, match):
    path = official_dir / TRAIN
    path.write_bytes(path.read_bytes() + garbage)
    with pytest.raises(ValueError, match=match) as error:
        _load(official_dir)
    assert str(path) in str(error.value)


def test_corrupt_bytes_inside_a_record(official_dir):
    path = official_dir / TRAIN
    data = bytearray(path.read_bytes())
    data[_record_ends(str(path))[3] + 500] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="record 4 is corrupt"):
        _load(official_dir)


def test_wrong_size_image_after_the_first(official_dir):
    path = _rewrite_train(official_dir, 3, _example(b"\0" * 3071, 0))
    with pytest.raises(ValueError) as error:
        _load(official_dir)
    message = str(error.value)
    assert (
        f"{path} (split 'train' of 'cifar10-lt'): record 3 does not parse"
        in message
    )
    assert "'image/encoded': '3071 bytes'" in message
    assert "raw uint8 32x32x3 bytes, 3072 bytes" in message


def test_record_that_is_no_example(official_dir):
    _rewrite_train(official_dir, 6, b"\xff\xff\xff")
    with pytest.raises(
        ValueError, match="record 6 does not parse: not a tf.train.Example"
    ):
        _load(official_dir)


@pytest.mark.parametrize("label", [10, -1])
def test_label_out_of_range(official_dir, label):
    _rewrite_train(official_dir, 5, _example(b"\0" * 3072, label))
    with pytest.raises(
        ValueError,
        match=f"record 5 has label {label}, out of range \\[0, 10\\)",
    ):
        _load(official_dir)


def test_damaged_test_file_fails_loading_train(official_dir):
    path = official_dir / TEST
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=f"{path} \\(split 'test' of"):
        _load(official_dir, "train")


def test_builder_fails_before_training(official_dir):
    path = official_dir / TRAIN
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        DatasetBuilder(
            "cifar10-lt",
            "train",
            4,
            True,
            str(official_dir),
            expected_examples=fakes.OFFICIAL_SIZES,
        )


@pytest.mark.parametrize(
    "sizes",
    [{"validation": 3}, {"train": 0}, {"train": True}, {"train": 8.0}, [8, 10]],
)
def test_bad_expected_examples(official_dir, sizes):
    with pytest.raises(ValueError, match="argument `expected_examples`"):
        _load(official_dir, sizes=sizes)


def test_expected_examples_only_for_official_files():
    with pytest.raises(ValueError, match="argument `expected_examples`"):
        load("test", "train", expected_examples={"train": 46})


def test_damaged_base_probs_file(official_dir):
    path = official_dir / "cifar10-lt_base_probs.txt"
    priors_lib.save_txt(path, priors_lib.exp_profile_counts(5000, 10, 100))
    text = path.read_text()
    path.write_text(text[: text.rindex("e-03") - 12] + "\n")
    with pytest.raises(ValueError, match=f"Invalid prior file {path}"):
        _load(official_dir)


def test_official_base_probs_cut_mid_number(official_dir):
    directory = shared_reference_dir()
    if directory is None:
        pytest.skip("../shared/reference is not present")
    text = open(os.path.join(directory, "cifar10-lt_base_probs.txt")).read()
    lines = text.splitlines()
    # The last line, 4.030307915524745759e-03, cut to 4.03: the file used
    # to load with the rarest class's prior renormalized to 0.80.
    lines[-1] = lines[-1][:4]
    path = official_dir / "cifar10-lt_base_probs.txt"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(
        ValueError, match=f"{path}: its 10 values sum to 5.0259"
    ):
        _load(official_dir)
