"""Tests of `la_keras.adjustment.retarget`, against float64 numpy."""

import numpy as np
import pytest
from keras import ops

from la_keras.adjustment import retarget

TRAIN = np.array([500.0, 120.0, 30.0, 5.0])
TARGET = np.array([0.1, 0.2, 0.3, 0.4])
EPS = 1e-12


def _reference(logits, train, target, tau, mode):
    """The published rule in float64: logits - tau log pi_train + log pi_t."""
    logits = np.asarray(logits, np.float64)
    target = target / target.sum()
    out = logits + np.log(target + EPS)
    if mode != "loss":
        train = train / train.sum()
        out = out - np.log(train**tau + EPS)
    return out


@pytest.mark.parametrize("mode", ["baseline", "posthoc", "loss"])
@pytest.mark.parametrize("tau", [0.0, 0.5, 1.0, 2.0])
def test_matches_the_float64_formula(mode, tau):
    logits = np.random.default_rng(0).normal(0, 3, (16, 4)).astype(np.float32)
    got = ops.convert_to_numpy(retarget(logits, TRAIN, TARGET, tau, mode=mode))
    want = _reference(logits, TRAIN, TARGET, tau, mode)
    # float32 logits plus a float32 shift: one rounding of values up to ~15.
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-5)
    assert got.dtype == np.float32


def test_uniform_target_is_the_balanced_rule():
    logits = np.random.default_rng(1).normal(0, 3, (64, 4))
    uniform = np.ones(4)
    posthoc = ops.convert_to_numpy(retarget(logits, TRAIN, uniform, 1.0))
    balanced = logits - np.log(TRAIN / TRAIN.sum() + EPS)
    np.testing.assert_array_equal(posthoc.argmax(1), balanced.argmax(1))
    loss = ops.convert_to_numpy(retarget(logits, None, uniform, mode="loss"))
    np.testing.assert_array_equal(loss.argmax(1), logits.argmax(1))


def test_training_prior_as_target_keeps_the_cross_entropy_argmax():
    logits = np.random.default_rng(2).normal(0, 3, (64, 4))
    out = ops.convert_to_numpy(retarget(logits, TRAIN, TRAIN, 1.0))
    np.testing.assert_allclose(out, logits, atol=1e-5)


def test_counts_and_probabilities_agree():
    logits = np.zeros((1, 4))
    a = ops.convert_to_numpy(retarget(logits, TRAIN, TARGET * 10))
    b = ops.convert_to_numpy(retarget(logits, TRAIN / 655, TARGET))
    np.testing.assert_allclose(a, b, rtol=1e-6)


def test_bad_arguments():
    logits = np.zeros((2, 4))
    with pytest.raises(ValueError, match=r"argument `mode`\. Expected one"):
        retarget(logits, TRAIN, TARGET, mode="ce")
    with pytest.raises(ValueError, match="`target_prior`: it has 3 classes"):
        retarget(logits, TRAIN, TARGET[:3])
    with pytest.raises(ValueError, match="logits have 4"):
        retarget(logits, TRAIN[:3], TARGET[:3])
    with pytest.raises(ValueError, match="argument `tau`"):
        retarget(logits, TRAIN, TARGET, -1.0)
    with pytest.raises(ValueError):
        retarget(logits, TRAIN, [0.5, -0.1, 0.3, 0.3])
