import os

import numpy as np
import pytest
import tensorflow as tf

from la_keras import priors
from tests.conftest import shared_reference_dir

CIFAR10_LT_COUNTS = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def test_from_counts_normalizes():
    p = priors.from_counts([3, 1])
    np.testing.assert_allclose(p, [0.75, 0.25])
    assert p.dtype == np.float64


def test_from_counts_accepts_tensor_and_array():
    for counts in (np.array([2, 2]), tf.constant([2.0, 2.0]), (2, 2)):
        np.testing.assert_allclose(priors.from_counts(counts), [0.5, 0.5])


@pytest.mark.parametrize(
    "bad, message",
    [
        ([1.0, -1.0], "negative values at class indices \\[1\\]"),
        ([1.0, np.nan], "NaN or inf"),
        ([np.inf, 1.0], "NaN or inf"),
        ([0, 0, 0], "all entries are zero"),
        ([[1, 2]], "1-D"),
        ([], "at least one"),
        (["a", "b"], "Expected a 1-D sequence"),
    ],
)
def test_bad_priors(bad, message):
    with pytest.raises(ValueError, match=message):
        priors.normalize(bad)


def test_from_labels():
    np.testing.assert_allclose(
        priors.from_labels(np.array([0, 0, 1, 3])), [0.5, 0.25, 0.0, 0.25]
    )
    np.testing.assert_allclose(
        priors.from_labels(tf.constant([1, 1]), num_classes=3), [0, 1, 0]
    )
    with pytest.raises(ValueError, match="out of range"):
        priors.from_labels([0, 5], num_classes=3)
    with pytest.raises(ValueError, match="negative"):
        priors.from_labels([0, -1])


@pytest.mark.parametrize("batched", [False, True])
def test_from_dataset_streams(batched):
    labels = np.repeat(np.arange(4), [40, 30, 20, 10])
    ds = tf.data.Dataset.from_tensor_slices((np.zeros((100, 2)), labels))
    if batched:
        ds = ds.batch(7)
    np.testing.assert_allclose(
        priors.from_dataset(ds, num_classes=5), [0.4, 0.3, 0.2, 0.1, 0.0]
    )
    counts = priors.count_dataset(ds.map(lambda x, y: {"label": y}), 4)
    np.testing.assert_array_equal(counts, [40, 30, 20, 10])


def test_from_dataset_label_out_of_range():
    ds = tf.data.Dataset.from_tensor_slices(([0.0, 0.0], [0, 3]))
    with pytest.raises(tf.errors.InvalidArgumentError, match="out of range"):
        priors.from_dataset(ds, num_classes=3)


def test_txt_round_trip(tmp_path):
    path = tmp_path / "x_base_probs.txt"
    priors.save_txt(path, CIFAR10_LT_COUNTS)
    loaded = priors.load_txt(path)
    np.testing.assert_allclose(loaded, priors.from_counts(CIFAR10_LT_COUNTS))
    np.testing.assert_allclose(np.loadtxt(path), loaded)
    with pytest.raises(FileNotFoundError, match="save_txt"):
        priors.load_txt(tmp_path / "missing.txt")


def _reference_lines(name="cifar10-lt"):
    directory = shared_reference_dir()
    if directory is None:
        # The same digits as the official file, from the EXP-100 profile.
        values = priors.from_counts(CIFAR10_LT_COUNTS)
        return [f"{v:.18e}" for v in values]
    with open(os.path.join(directory, f"{name}_base_probs.txt")) as f:
        return f.read().splitlines()


def _write(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def test_load_txt_refuses_a_file_cut_mid_number(tmp_path):
    lines = _reference_lines()
    assert lines[-1].startswith("4.0303079155247")
    # 4.030307915524745759e-03 cut to 4.03: the rarest prior was 0.80.
    path = _write(tmp_path / "cut.txt", [*lines[:-1], lines[-1][:4]])
    with pytest.raises(
        ValueError,
        match=f"Invalid prior file {path}: its 10 values sum to 5.02",
    ):
        priors.load_txt(path)
    # Cut inside the exponent: no number at all.
    path = _write(tmp_path / "cut2.txt", [*lines[:-1], lines[-1][:-2]])
    with pytest.raises(
        ValueError, match=f"{path}: line 10 is not a number: '4.030"
    ):
        priors.load_txt(path)


@pytest.mark.parametrize(
    "lines, match",
    [
        (
            ["0.5", "zero point five"],
            "line 2 is not a number: 'zero point five'",
        ),
        (["0.5", "0.4"], "its 2 values sum to 0.9"),
        (["0.5", "0.25 0.25"], "line 2 is not a number"),
        (["1.5", "-0.5"], "negative values at classes \\[1\\]"),
        (["nan", "1.0"], "NaN or inf at classes \\[0\\]"),
        (["50", "30", "20"], "its 3 values sum to 100.0"),
        ([], "it holds no number"),
    ],
)
def test_load_txt_refuses_what_is_no_probability_vector(tmp_path, lines, match):
    path = _write(tmp_path / "bad_base_probs.txt", lines)
    with pytest.raises(ValueError, match=f"Invalid prior file {path}: {match}"):
        priors.load_txt(path)


def test_load_txt_tolerates_rounding(tmp_path):
    path = _write(tmp_path / "rounded.txt", ["0.3334", "0.3333", "0.3338", ""])
    np.testing.assert_allclose(priors.load_txt(path).sum(), 1.0)
    lines = _reference_lines("cifar100-lt")
    loaded = priors.load_txt(_write(tmp_path / "ref.txt", lines))
    assert loaded.shape == (len(lines),)


def test_profiles():
    assert priors.exp_profile_counts(5000, 10, 100) == CIFAR10_LT_COUNTS
    assert sum(priors.exp_profile_counts(500, 100, 100)) == 10847
    assert priors.step_profile_counts(100, 4, 10) == [100, 100, 10, 10]
    assert priors.exp_profile_counts(10, 3, 1) == [10, 10, 10]
    with pytest.raises(ValueError, match="ratio"):
        priors.exp_profile_counts(10, 3, 0.5)


@pytest.mark.parametrize(
    "name, n_max, classes",
    [("cifar10-lt", 5000, 10), ("cifar100-lt", 500, 100)],
)
def test_exp100_counts_reproduce_official_base_probs(name, n_max, classes):
    directory = shared_reference_dir()
    if directory is None:
        pytest.skip("../shared/reference is not present")
    official = priors.load_txt(
        os.path.join(directory, f"{name}_base_probs.txt")
    )
    ours = priors.from_counts(priors.exp_profile_counts(n_max, classes, 100))
    np.testing.assert_allclose(ours, official, rtol=0, atol=1e-15)
