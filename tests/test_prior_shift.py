"""Tests of `la_keras.prior_shift` and `la_keras.calibration`, float64 numpy.

The synthetic model is exact: classes are unit-variance Gaussians in 2-D,
and the logits are `log p_train(y|x)` of that mixture under the training
prior, so they are calibrated for the training mix by construction.
"""

import json

import numpy as np
import pytest

from la_keras.calibration import Calibration
from la_keras.calibration import fit_calibration
from la_keras.prior_shift import confusion_matrix
from la_keras.prior_shift import estimate_prior

MEANS = 1.5 * np.array([[0, 0], [2, 0], [0, 2], [2, 2], [1, 3]], np.float64)
TRAIN = np.array([0.5, 0.25, 0.12, 0.08, 0.05])
TARGET = np.array([0.05, 0.1, 0.2, 0.3, 0.35])
N = 20_000
# Sampling error of a class frequency at n=20,000 is at most
# sqrt(0.25 / n) ~ 0.0035; overlap of the classes inflates the estimator's
# variance a few times; 0.02 is > 5 such standard errors.
TOLERANCE = 0.02


def _sample(prior, n, seed):
    """Labels from `prior`, and the exact training-mix logits of their x."""
    rng = np.random.default_rng(seed)
    y = rng.choice(len(prior), size=n, p=prior)
    x = MEANS[y] + rng.normal(size=(n, 2))
    sq = ((x[:, None, :] - MEANS[None]) ** 2).sum(axis=2)
    return np.log(TRAIN) - 0.5 * sq, y


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def test_em_recovers_a_known_shift():
    logits, y = _sample(TARGET, N, seed=0)
    est = estimate_prior(logits, TRAIN, "em", return_info=True)
    assert est.converged and 1 < est.iterations < 1000
    assert np.abs(est.prior - TARGET).max() < TOLERANCE
    # Far better than the model's own mean prediction (the naive estimate).
    naive = _softmax(logits).mean(axis=0)
    assert np.abs(naive - TARGET).max() > 3 * TOLERANCE


def test_em_with_a_uniform_target_stays_near_uniform():
    logits, _ = _sample(np.full(5, 0.2), N, seed=1)
    prior = estimate_prior(logits, TRAIN)
    np.testing.assert_allclose(prior, 0.2, atol=TOLERANCE)


def test_em_fixed_point_satisfies_the_mlls_equation():
    logits, _ = _sample(TARGET, 5_000, seed=2)
    pi = estimate_prior(logits, TRAIN, tol=1e-12, max_iter=100_000)
    # Stationarity of sum_x log sum_y p(y|x) pi_y / train_y on the simplex:
    # mean_x [p(y|x)/train_y] / [sum_k p(k|x) pi_k/train_k] = 1 for every y.
    p = _softmax(logits)
    ratio = p / TRAIN
    score = (ratio / (ratio @ pi)[:, None]).mean(axis=0)
    np.testing.assert_allclose(score, 1.0, atol=1e-6)
    assert abs(pi.sum() - 1) < 1e-12


def test_em_stops_at_max_iter():
    logits, _ = _sample(TARGET, 2_000, seed=3)
    est = estimate_prior(logits, TRAIN, tol=1e-15, max_iter=3, return_info=True)
    assert est.iterations == 3 and not est.converged


def test_em_on_probs_matches_em_on_logits():
    logits, _ = _sample(TARGET, 2_000, seed=4)
    a = estimate_prior(logits, TRAIN)
    b = estimate_prior(_softmax(logits), TRAIN, inputs="probs")
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_bbse_recovers_a_known_shift():
    holdout, holdout_y = _sample(TRAIN, N, seed=5)
    logits, _ = _sample(TARGET, N, seed=6)
    confusion = confusion_matrix(holdout, holdout_y)
    np.testing.assert_allclose(confusion.sum(axis=0), TRAIN, atol=TOLERANCE)
    prior = estimate_prior(logits, TRAIN, "bbse", confusion=confusion)
    assert np.abs(prior - TARGET).max() < TOLERANCE
    assert abs(prior.sum() - 1) < 1e-12 and np.all(prior >= 0)


def test_bbse_solves_c_w_equals_q_exactly():
    # A confusion with known inverse: q = C w holds for w = TARGET / TRAIN.
    joint = np.diag(TRAIN) * 0.8 + np.outer(np.full(5, 0.2 / 5), TRAIN)
    q = joint @ (TARGET / TRAIN)
    counts = np.round(q * 100_000).astype(int)
    probs = np.repeat(np.eye(5), counts, axis=0)
    prior = estimate_prior(
        probs, TRAIN, "bbse", inputs="probs", confusion=joint, ridge=0.0
    )
    np.testing.assert_allclose(prior, TARGET, atol=1e-4)


def test_temperature_scaling_recovers_a_known_temperature():
    logits, y = _sample(TRAIN, N, seed=7)
    cal = fit_calibration(logits * 2.5, y, "ts")
    assert abs(cal.temperature - 2.5) < 0.1
    assert cal.bias is None


def test_bcts_recovers_a_known_temperature_and_bias():
    logits, y = _sample(TRAIN, N, seed=8)
    bias = np.array([0.6, -0.3, 0.2, -0.4, -0.1])  # mean 0
    cal = fit_calibration((logits - bias) * 0.5, y, "bcts")
    assert abs(cal.temperature - 0.5) < 0.03
    np.testing.assert_allclose(cal.bias, bias, atol=0.1)
    # Calibrated probabilities are the exact posterior again.
    np.testing.assert_allclose(
        cal.apply((logits - bias) * 0.5), _softmax(logits), atol=0.03
    )


def test_calibration_lowers_the_nll_and_helps_em():
    logits, y = _sample(TRAIN, N, seed=9)
    target_logits, _ = _sample(TARGET, N, seed=10)
    skewed = (logits + np.log(TRAIN)) * 3.0  # overconfident, biased

    def nll(probs):
        return -np.mean(np.log(probs[np.arange(len(y)), y]))

    cal = fit_calibration(skewed, y, "bcts")
    assert nll(cal.apply(skewed)) < nll(_softmax(skewed)) - 0.05
    raw = estimate_prior((target_logits + np.log(TRAIN)) * 3.0, TRAIN)
    fixed = estimate_prior(
        (target_logits + np.log(TRAIN)) * 3.0, TRAIN, calibration=cal
    )
    # Close to EM on the exact posteriors; the uncalibrated logits are not.
    exact = estimate_prior(target_logits, TRAIN)
    assert np.abs(fixed - exact).max() < TOLERANCE
    assert np.abs(raw - exact).max() > 5 * TOLERANCE


def test_calibration_json_round_trip():
    cal = Calibration("bcts", 1.7, [0.1, -0.2, 0.1])
    back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert (back.kind, back.temperature) == ("bcts", 1.7)
    z = np.array([[1.0, 2.0, 3.0]])
    np.testing.assert_array_equal(back.apply(z), cal.apply(z))
    want = _softmax(z / 1.7 + np.array([0.1, -0.2, 0.1]))
    np.testing.assert_allclose(cal.apply(z), want, rtol=1e-12)
    assert Calibration.from_dict(Calibration().to_dict()).kind == "none"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(method="mle"), "argument `method`"),
        (dict(inputs="scores"), "argument `inputs`"),
        (dict(train_prior=[0.5, 0.5]), "argument `train_prior`"),
        (dict(train_prior=[0.5, 0.5, 0.0]), "argument `train_prior`"),
        (dict(train_prior=[0.5, np.nan, 0.5]), "argument `train_prior`"),
        (dict(values=np.zeros(3)), "argument `logits_or_probs`"),
        (dict(values=[[0.0, np.nan, 1.0]]), "argument `logits_or_probs`"),
        (dict(values=[[0.5, 0.6, 0.1]], inputs="probs"), "simplex"),
        (dict(values=[[1.5, -0.5, 0.0]], inputs="probs"), "simplex"),
        (dict(method="bbse"), "argument `confusion`"),
        (dict(method="bbse", confusion=np.eye(2) / 2), "argument `confusion`"),
        (dict(tol=0.0), "argument `tol`"),
        (dict(max_iter=0), "argument `max_iter`"),
        (dict(calibration="ts"), "argument `calibration`"),
        (dict(inputs="probs", calibration=Calibration()), "`calibration`"),
    ],
)
def test_errors(kwargs, match):
    args = dict(values=[[0.2, 0.3, 0.5]], train_prior=[0.2, 0.3, 0.5])
    args.update(kwargs)
    values, train = args.pop("values"), args.pop("train_prior")
    with pytest.raises(ValueError, match=match) as info:
        estimate_prior(values, train, **args)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "call, match",
    [
        (lambda: Calibration("platt"), "argument `kind`"),
        (lambda: Calibration("ts", 0.0), "argument `temperature`"),
        (lambda: Calibration("bcts", 1.0), "argument `bias`"),
        (
            lambda: Calibration("bcts", 1.0, [1, 2]).apply([[0, 0, 0]]),
            "classes",
        ),
        (lambda: Calibration.from_dict([1]), "argument `data`"),
        (lambda: fit_calibration([[0, 1]], [2], "ts"), "argument `labels`"),
        (lambda: fit_calibration([[0, 1]], [0.0], "ts"), "argument `labels`"),
        (lambda: fit_calibration([[0, 1]], [0], "x"), "argument `kind`"),
        (lambda: confusion_matrix([[0, 1]], [[0]]), "argument `labels`"),
    ],
)
def test_calibration_errors(call, match):
    with pytest.raises(ValueError, match=match) as info:
        call()
    assert "\n" not in str(info.value)
