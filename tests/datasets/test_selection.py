"""Tests of the long-tail profile and the holdout selection."""

import os

import numpy as np
import pytest

from la_keras.datasets import selection
from tests.conftest import shared_reference_dir

CIFAR10_LT = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def test_exp_profile_gives_official_counts():
    cifar10 = selection.profile_counts([5000] * 10, 100, "exp")
    cifar100 = selection.profile_counts([500] * 100, 100, "exp")
    np.testing.assert_array_equal(cifar10, CIFAR10_LT)
    assert cifar10.sum() == 12406
    assert cifar100.sum() == 10847
    assert cifar100.dtype == np.int64


def test_profile_priors_equal_reference_files():
    ref_dir = shared_reference_dir()
    if ref_dir is None:
        pytest.skip("../shared/reference is not beside the checkout")
    for name, per_class, classes in [
        ("cifar10-lt", 5000, 10),
        ("cifar100-lt", 500, 100),
    ]:
        counts = selection.profile_counts([per_class] * classes, 100, "exp")
        reference = np.loadtxt(os.path.join(ref_dir, f"{name}_base_probs.txt"))
        np.testing.assert_allclose(
            counts / counts.sum(), reference, rtol=0, atol=1e-12
        )


def test_n_max_is_smallest_source_class():
    counts = selection.profile_counts([60, 50, 70], 10, "exp")
    np.testing.assert_array_equal(counts, [50, 15, 5])


def test_step_profile():
    counts = selection.profile_counts([100] * 4, 10, "step")
    np.testing.assert_array_equal(counts, [100, 100, 10, 10])


def test_profile_errors():
    with pytest.raises(ValueError, match="leaves classes \\[9\\] with zero"):
        selection.profile_counts([5000] * 10, 10000, "exp")
    with pytest.raises(ValueError, match="Expected one of"):
        selection.profile_counts([10] * 3, 2, "linear")
    with pytest.raises(ValueError, match="classes \\[1\\] have no training"):
        selection.profile_counts([10, 0, 10], 2, "exp")
    with pytest.raises(ValueError, match="ratio"):
        selection.profile_counts([10] * 3, 0.5, "exp")


def test_seed_zero_keeps_first_images_of_each_class():
    labels = np.array([1, 0, 1, 0, 0, 1, 1])
    train, holdout = selection.select(labels, 2, np.array([2, 3]))
    np.testing.assert_array_equal(train, [0, 1, 2, 3, 5])
    assert holdout.size == 0


def test_other_seed_keeps_seeded_permutation():
    labels = np.repeat(np.arange(3), 100)
    counts = np.array([50, 20, 5])
    first, _ = selection.select(labels, 3, counts, seed=7)
    again, _ = selection.select(labels, 3, counts, seed=7)
    other, _ = selection.select(labels, 3, counts, seed=8)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    np.testing.assert_array_equal(np.bincount(labels[first]), counts)
    # Not the first images of each class.
    assert not np.array_equal(first, selection.select(labels, 3, counts)[0])


def test_holdout_is_stratified_disjoint_tail():
    labels = np.repeat(np.arange(3), 40)
    counts = np.array([40, 10, 2])
    train, holdout = selection.select(labels, 3, counts, holdout_fraction=0.2)
    np.testing.assert_array_equal(np.bincount(labels[holdout]), [8, 2, 1])
    np.testing.assert_array_equal(np.bincount(labels[train]), [32, 8, 1])
    assert not set(train) & set(holdout)
    # The holdout takes the last kept images of a class.
    np.testing.assert_array_equal(holdout[labels[holdout] == 0], range(32, 40))


def test_holdout_sizes_keep_one_for_training():
    sizes = selection.holdout_sizes(np.array([1, 2, 3, 100]), 0.9)
    np.testing.assert_array_equal(sizes, [0, 1, 2, 90])
    sizes = selection.holdout_sizes(np.array([5, 100]), 0.01)
    np.testing.assert_array_equal(sizes, [1, 1])


@pytest.mark.parametrize("fraction", [-0.1, 1.0, "0.1", True])
def test_bad_holdout_fraction(fraction):
    with pytest.raises(ValueError, match="argument `holdout_fraction`"):
        selection.check_holdout_fraction(fraction)


def test_labels_out_of_range():
    with pytest.raises(ValueError, match="out of range"):
        selection.select(np.array([0, 3]), 3, None)
