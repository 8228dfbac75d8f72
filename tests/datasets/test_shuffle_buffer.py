"""The training shuffle of `DatasetBuilder`: its buffer, default and explicit."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from la_keras.datasets import DatasetBuilder
from la_keras.datasets import official
from tests.datasets import fakes


def _shuffles(dataset):
    """`(buffer_size, reshuffle_each_iteration)` of each shuffle of a pipeline."""
    graph = tf.compat.v1.GraphDef()
    graph.ParseFromString(dataset._as_serialized_graph().numpy())
    nodes = {node.name: node for node in graph.node}
    found = []
    for node in graph.node:
        if node.op.startswith("ShuffleDataset"):
            size = nodes[node.input[1].split(":")[0]]
            found.append(
                (
                    int(tf.make_ndarray(size.attr["value"].tensor)),
                    node.attr["reshuffle_each_iteration"].b,
                )
            )
    return found


def _official(directory, split="train", training=True, batch=4, **kwargs):
    return DatasetBuilder(
        "cifar10-lt",
        split,
        batch,
        training,
        str(directory),
        expected_examples=fakes.OFFICIAL_SIZES,
        **kwargs,
    )


def test_official_files_shuffle_within_10000_records(official_dir):
    builder = _official(official_dir)
    assert builder.shuffle_buffer == official.SHUFFLE_BUFFER == 10_000
    assert _shuffles(builder.build()) == [(10_000, True)]


def test_other_cifar_sets_shuffle_the_whole_split():
    builder = DatasetBuilder("test", "train", 8, True)
    assert builder.shuffle_buffer is None
    assert _shuffles(builder.build()) == [(46, True)]


def test_evaluation_does_not_shuffle(official_dir):
    assert _shuffles(_official(official_dir, "test", False).build()) == []
    assert (
        _shuffles(
            _official(official_dir, "test", False, 4, shuffle_buffer=3).build()
        )
        == []
    )


def test_explicit_buffer_is_honoured(official_dir):
    builder = DatasetBuilder("test", "train", 8, True, shuffle_buffer=5)
    assert builder.shuffle_buffer == 5
    assert _shuffles(builder.build()) == [(5, True)]
    official_builder = _official(official_dir, shuffle_buffer=20_000)
    assert _shuffles(official_builder.build()) == [(20_000, True)]


@pytest.fixture
def labelled_in_order(tmp_path):
    """cifar100-lt files whose train record i has label i (40 records)."""
    official.write_tfrecord(
        str(tmp_path / "cifar100-lt_train.tfrecord"),
        fakes.official_images(40, 0),
        np.arange(40),
    )
    official.write_tfrecord(
        str(tmp_path / "cifar100_test.tfrecord"),
        fakes.official_images(2, 1),
        [0, 1],
    )
    return tmp_path


def _epochs(directory, shuffle_buffer, epochs=4):
    builder = DatasetBuilder(
        "cifar100-lt",
        "train",
        40,
        True,
        str(directory),
        expected_examples={"train": 40, "test": 2},
        shuffle_buffer=shuffle_buffer,
    )
    dataset = builder.build()
    return [
        np.concatenate([y.numpy() for _, y in dataset]) for _ in range(epochs)
    ]


def test_buffer_bounds_how_far_an_example_moves(labelled_in_order):
    # With a buffer of 3, output i is one of the first i + 3 records.
    epochs = _epochs(labelled_in_order, 3)
    for labels in epochs:
        assert sorted(labels) == list(range(40))
        assert np.all(labels <= np.arange(40) + 2)
    # Reshuffled each epoch.
    assert len({labels.tobytes() for labels in epochs}) > 1
    # A buffer of 1 keeps the file order.
    for labels in _epochs(labelled_in_order, 1, epochs=2):
        np.testing.assert_array_equal(labels, range(40))
    # The default 10,000 mixes the whole (small) file.
    assert any(
        np.any(labels > np.arange(40) + 2)
        for labels in _epochs(labelled_in_order, None, epochs=2)
    )


@pytest.mark.parametrize("bad", [0, -1, 2.5, True, "100"])
def test_bad_shuffle_buffer(bad, tmp_path):
    with pytest.raises(ValueError, match="argument `shuffle_buffer`"):
        DatasetBuilder("test", "train", 8, True, shuffle_buffer=bad)
    # Refused before any file is read: the folder is empty.
    with pytest.raises(ValueError, match="argument `shuffle_buffer`"):
        DatasetBuilder(
            "cifar10-lt", "train", 8, True, str(tmp_path), shuffle_buffer=bad
        )


def test_imagenet_recipe_default_buffer():
    with tfds.testing.mock_data(num_examples=6):
        builder = DatasetBuilder("imagenet_lt", "train", 3, True)
        assert builder.shuffle_buffer == 4096
        assert _shuffles(builder.build()) == [(4096, True)]
        # Its random resized crop takes no padding.
        with pytest.raises(ValueError, match="takes no padding"):
            DatasetBuilder("imagenet_lt", "train", 3, True, crop_padding=4)
