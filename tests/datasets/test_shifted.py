"""Tests of the shifted test mixes (LADE / SADE's forward and backward)."""

import numpy as np
import pytest

from la_keras.datasets.shifted import shifted_counts
from la_keras.datasets.shifted import shifted_indices

TRAIN = np.array([30, 500, 5, 120, 60])  # training order: 1, 3, 4, 0, 2


def test_forward_and_backward_follow_the_published_formula():
    rank = np.array([3, 0, 4, 1, 2])
    want = np.floor(100 * 50.0 ** (-rank / 4)).astype(int)
    np.testing.assert_array_equal(shifted_counts(TRAIN, 100, "forward50"), want)
    back = np.floor(100 * 50.0 ** (-(4 - rank) / 4)).astype(int)
    np.testing.assert_array_equal(
        shifted_counts(TRAIN, 100, "backward50"), back
    )
    assert shifted_counts(TRAIN, 100, "forward50")[1] == 100
    assert shifted_counts(TRAIN, 100, "backward50")[2] == 100
    np.testing.assert_array_equal(shifted_counts(TRAIN, 7, "uniform"), [7] * 5)
    np.testing.assert_array_equal(shifted_counts(TRAIN, 9, "forward1"), [9] * 5)


def test_indices_are_seeded_distinct_and_of_the_right_counts():
    labels = np.random.default_rng(0).permutation(np.repeat(np.arange(5), 100))
    a = shifted_indices(labels, TRAIN, "forward10", seed=3)
    assert len(np.unique(a)) == len(a)  # without replacement
    np.testing.assert_array_equal(
        np.bincount(labels[a], minlength=5),
        shifted_counts(TRAIN, 100, "forward10"),
    )
    np.testing.assert_array_equal(
        a, shifted_indices(labels, TRAIN, "forward10", 3)
    )
    assert not np.array_equal(a, shifted_indices(labels, TRAIN, "forward10", 4))


@pytest.mark.parametrize("bad", ["forward", "sideways10", "forward0.5", "10"])
def test_bad_test_prior_is_one_line(bad):
    with pytest.raises(ValueError, match="argument `test_prior`") as info:
        shifted_counts(TRAIN, 10, bad)
    assert "\n" not in str(info.value)


def test_labels_beyond_the_classes_are_refused():
    with pytest.raises(ValueError, match="argument `labels`"):
        shifted_indices([0, 1, 7], TRAIN, "uniform")


def test_a_mix_given_as_numbers():
    from la_keras.datasets.shifted import prior_counts

    assert prior_counts([0.5, 0.25, 0.125, 0.125], 40).tolist() == [
        40,
        20,
        10,
        10,
    ]
    labels = np.repeat(np.arange(4), 40)
    kept = shifted_indices(labels, [9, 8, 7, 6], [4.0, 2.0, 1.0, 1.0], seed=3)
    np.testing.assert_array_equal(
        np.bincount(labels[kept], minlength=4), [40, 20, 10, 10]
    )
    for bad in (
        [0.5, -0.1, 0.3, 0.3],
        [0.0, 0.0, 0.0, 0.0],
        [1.0, np.nan, 1, 1],
    ):
        with pytest.raises(ValueError, match="argument `prior`"):
            prior_counts(bad, 10)
    with pytest.raises(ValueError, match="3 numbers for 4 classes"):
        shifted_indices(labels, [9, 8, 7, 6], [1.0, 1.0, 1.0], seed=0)
