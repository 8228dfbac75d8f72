"""Tests of the class-balanced sampler: the numpy order and the TensorFlow
pipeline that draws it (the JAX one is in tests/training/test_jax_trainer.py).
"""

import concurrent.futures

import numpy as np
import pytest
import tensorflow as tf

from la_keras.datasets import DatasetBuilder
from la_keras.datasets import dataset_builder
from la_keras.datasets import folder
from la_keras.datasets import load
from la_keras.datasets.sampling import check_sampler
from la_keras.datasets.sampling import class_balanced_order
from tests.datasets import folders

# CIFAR-10-LT's training counts: 5,000 images down to 50 (ratio 100).
LONG_TAIL = np.round(5000 * 0.01 ** (np.arange(10) / 9)).astype(int)
# The labels of `DatasetBuilder("test", "train", 8, True, seed=3)`'s first
# two epochs (TensorFlow's seed set as `la_keras.runs.train_tf.train_data` does),
# recorded before the sampler was added: the default pipeline is unchanged.
# The shuffled labels of epochs 0 and 1 of `test` (seed 3, batch 8), with
# TensorFlow's global seed set once to the run seed, as a run does.
SHUFFLED_EPOCHS = [
    [
        [5, 4, 8, 1, 0, 7, 1, 1], [4, 8, 0, 3, 6, 0, 0, 5],
        [0, 2, 9, 2, 6, 3, 0, 0], [3, 5, 6, 9, 2, 0, 1, 3],
        [5, 0, 1, 4, 1, 4, 1, 2],
    ],
    [
        [2, 7, 2, 0, 0, 0, 6, 1], [5, 3, 6, 0, 2, 4, 1, 5],
        [0, 1, 1, 0, 4, 2, 3, 8], [1, 3, 5, 0, 6, 4, 3, 1],
        [3, 1, 1, 7, 5, 0, 8, 2],
    ],
]  # fmt: skip


def _within_binomial(counts, draws, p, sigmas=5.0):
    """Whether every count is within `sigmas` standard deviations of the
    mean of Binomial(draws, p)."""
    sd = np.sqrt(draws * p * (1.0 - p))
    return bool(np.all(np.abs(np.asarray(counts) - draws * p) <= sigmas * sd))


def _split(name="test", split="train"):
    images, labels = zip(*load(name, split)[0].as_numpy_iterator(), strict=True)
    return np.stack(images), np.array(labels)


def test_long_tail_classes_are_drawn_uniformly():
    labels = np.repeat(np.arange(10), LONG_TAIL)
    rng = np.random.default_rng(0)
    labels = labels[rng.permutation(labels.size)]
    order = class_balanced_order(labels, seed=0, epoch=0)
    assert order.shape == (labels.size,)  # an epoch keeps its length
    counts = np.bincount(labels[order], minlength=10)
    assert _within_binomial(counts, labels.size, 0.1), counts
    # The check fails for a shuffled epoch (each example once).
    assert not _within_binomial(LONG_TAIL, labels.size, 0.1)
    # Within the tail class, its 50 examples are drawn uniformly.
    tail = np.flatnonzero(labels == 9)
    drawn = order[labels[order] == 9]
    per_example = [(drawn == i).sum() for i in tail]
    assert _within_binomial(per_example, drawn.size, 1 / tail.size)
    assert sum(per_example) == drawn.size


def test_order_is_a_function_of_seed_and_epoch():
    labels = np.repeat(np.arange(4), [40, 10, 5, 1])
    order = class_balanced_order(labels, 7, 3)
    np.testing.assert_array_equal(order, class_balanced_order(labels, 7, 3))
    assert not np.array_equal(order, class_balanced_order(labels, 8, 3))
    assert not np.array_equal(order, class_balanced_order(labels, 7, 4))


def test_indices_are_valid_and_of_the_present_classes():
    # Classes 2, 5 and 9 only (of 10): no draw goes to an absent class.
    labels = np.array([5, 2, 9, 5, 5, 2, 5, 5, 5, 5, 5, 5], np.int32)
    order = class_balanced_order(labels, 0, 0, num_draws=3000)
    assert order.dtype == np.int64 and order.shape == (3000,)
    assert order.min() >= 0 and order.max() < labels.size
    counts = np.bincount(labels[order], minlength=10)
    assert set(np.flatnonzero(counts)) == {2, 5, 9}
    assert _within_binomial(counts[[2, 5, 9]], 3000, 1 / 3)
    assert class_balanced_order(labels, 0, 0, num_draws=0).shape == (0,)


@pytest.mark.parametrize("sampler", ["balanced", "", None, 1])
def test_bad_sampler_names(sampler):
    with pytest.raises(ValueError, match=r"argument `sampler`\. Expected one"):
        check_sampler(sampler)


def test_bad_order_arguments():
    with pytest.raises(ValueError, match="argument `labels`"):
        class_balanced_order([0.0, 1.0], 0, 0)
    with pytest.raises(ValueError, match="argument `labels`"):
        class_balanced_order(np.zeros((2, 2), int), 0, 0)
    with pytest.raises(ValueError, match="argument `labels`"):
        class_balanced_order(np.zeros(0, int), 0, 0)
    for bad in (-1, 2.0, True):
        with pytest.raises(ValueError, match="argument `num_draws`"):
            class_balanced_order([0, 1], 0, 0, num_draws=bad)


def test_builder_refuses_a_bad_sampler_before_reading():
    with pytest.raises(ValueError, match="Received: sampler='cRT'"):
        DatasetBuilder("no_such_set", "train", 8, True, sampler="cRT")


def test_default_shuffle_is_unchanged():
    # Each epoch's order is a function of (seed, epoch), whichever epoch is
    # built first and on whichever thread: no global seed is set per epoch.
    tf.random.set_seed(3)
    for sampler in ({}, {"sampler": "shuffle"}):
        builder = DatasetBuilder("test", "train", 8, True, seed=3, **sampler)

        def labels(epoch, builder=builder):
            batches = builder.dataset_fn(None, epoch)
            return [y.numpy().tolist() for _, y in batches]

        assert labels(1) == SHUFFLED_EPOCHS[1]
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            assert pool.submit(labels, 0).result() == SHUFFLED_EPOCHS[0]
        assert labels(None) == SHUFFLED_EPOCHS[0]


def test_builder_draws_the_class_balanced_order():
    images, labels = _split()
    builder = DatasetBuilder(
        "test", "train", 8, True, seed=3, crop_padding=0,
        sampler="class_balanced",
    )  # fmt: skip
    assert builder.steps_per_epoch == 46 // 8  # as the shuffle's
    normalized = images / 255.0 - 0.5
    epochs = []
    for epoch in (0, 1):
        order = class_balanced_order(labels, 3, epoch)[:40]
        batches = list(builder.build(epoch=epoch))
        assert len(batches) == builder.steps_per_epoch
        got_labels = np.concatenate([y for _, y in batches])
        np.testing.assert_array_equal(got_labels, labels[order])
        # Each image is the drawn one, normalised, flipped or not (no crop).
        for image, row in zip(
            np.concatenate([x for x, _ in batches]), order, strict=True
        ):
            want = normalized[row]
            assert np.allclose(image, want, atol=1e-6) or np.allclose(
                image, want[:, ::-1], atol=1e-6
            )
        epochs.append(got_labels)
    assert not np.array_equal(*epochs)
    # A new builder (a run resumed in a new process) draws the same epoch.
    again = DatasetBuilder(
        "test", "train", 8, True, seed=3, sampler="class_balanced"
    )
    got = np.concatenate([y for _, y in again.dataset_fn(None, epoch=1)])
    np.testing.assert_array_equal(got, epochs[1])


def test_input_pipelines_draw_their_share():
    _, labels = _split()
    builder = DatasetBuilder(
        "test", "train", 8, True, seed=3, sampler="class_balanced"
    )
    order = class_balanced_order(labels, 3, 2)
    for pipeline in range(2):
        context = tf.distribute.InputContext(
            num_input_pipelines=2,
            input_pipeline_id=pipeline,
            num_replicas_in_sync=2,
        )
        batches = list(builder.dataset_fn(context, epoch=2))
        assert [y.shape[0] for _, y in batches] == [4] * 5  # 23 draws each
        got = np.concatenate([y for _, y in batches])
        np.testing.assert_array_equal(got, labels[order[pipeline::2][:20]])


def test_class_balanced_needs_the_epoch():
    builder = DatasetBuilder("test", "train", 8, True, sampler="class_balanced")
    with pytest.raises(ValueError, match="Received: epoch=None"):
        builder.dataset_fn(None)
    # Evaluation reads every example once, in order, whatever the sampler.
    test = DatasetBuilder("test", "test", 8, False, sampler="class_balanced")
    got = np.concatenate([y for _, y in test.build()])
    np.testing.assert_array_equal(got, _split("test", "test")[1])


def test_folder_sets_in_memory_or_refused(tmp_path, monkeypatch):
    folders.make(tmp_path, {"train": {"a": 3, "b": 1}, "test": folders.SMALL})
    name = folders.name(tmp_path)
    # Held in memory: drawn as the order says.
    builder = DatasetBuilder(name, "train", 2, True, sampler="class_balanced")
    got = np.concatenate([y for _, y in builder.build(epoch=0)])
    _, labels, _ = folder.arrays(name, "train")
    np.testing.assert_array_equal(
        got, labels[class_balanced_order(labels, 0, 0)]
    )
    # Streamed from disk: refused.
    monkeypatch.setattr(dataset_builder, "FOLDER_CACHE_BYTES", 0)
    with pytest.raises(ValueError, match="needs a dataset held in memory"):
        DatasetBuilder(name, "train", 2, True, sampler="class_balanced")
    # Shuffled, the same set streams as before.
    assert not DatasetBuilder(name, "train", 2, True).cached
