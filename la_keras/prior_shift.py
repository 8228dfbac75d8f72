"""Estimate a deployment class mix from a model's predictions (prior shift).

Under label shift, `p(x|y)` is the training one and only the class prior
changes, from `train_prior` to an unknown target prior. Two estimators
from the model's predictions on unlabelled deployment data:

- "em", maximum likelihood label shift (MLLS; Saerens, Latinne and
  Decaestecker 2002): with `w = pi / train_prior`, reweight the calibrated
  posteriors `p'(y|x) ∝ p(y|x) w_y` and set `pi = mean_x p'(y|x)` until
  `max |Δpi| < tol`. Its fixed point maximises the deployment likelihood.
- "bbse", black-box shift estimation (Lipton et al. 2018): with the
  holdout's joint confusion `C[i, j] = P(ŷ=i, y=j)` (training mix) and the
  deployment's prediction frequencies `q_i = P(ŷ=i)`, solve `C w = q` by
  ridge-regularised least squares, clip `w >= 0`, `pi ∝ w * train_prior`.

EM needs calibrated probabilities: pass `calibration`, a
`la_keras.calibration.Calibration` fitted on the holdout (BCTS works best,
Alexandari et al. 2020). The estimate feeds `la_keras.adjustment.retarget`.

Numpy only, float64 throughout.
"""

from __future__ import annotations

from typing import Any
from typing import NamedTuple

import numpy as np

from la_keras import priors as priors_lib
from la_keras.calibration import Calibration
from la_keras.calibration import check_logits

__all__ = ["METHODS", "PriorEstimate", "confusion_matrix", "estimate_prior"]

METHODS = ("em", "bbse")
INPUTS = ("logits", "probs")
# How far a row of `probs` may sum from 1.
SIMPLEX_TOLERANCE = 1e-4


class PriorEstimate(NamedTuple):
    """The estimated target prior and how it was reached.

    Attributes:
        prior: float64 `[num_classes]`, sums to 1.
        method: "em" or "bbse".
        iterations: EM iterations run (0 for BBSE).
        converged: whether EM met `tol` within `max_iter` (True for BBSE).
    """

    prior: np.ndarray
    method: str
    iterations: int
    converged: bool


def _choice(value, name, options):
    if value not in options:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected one of "
            f"{', '.join(repr(o) for o in options)}. Received: {name}={value!r}"
        )


def _probabilities(values, inputs, calibration, name) -> np.ndarray:
    """Calibrated probabilities `[N, C]` from logits or checked probs."""
    _choice(inputs, "inputs", INPUTS)
    if calibration is not None and not isinstance(calibration, Calibration):
        raise ValueError(
            "Invalid value for argument `calibration`. Expected a "
            "la_keras.calibration.Calibration or None. Received: "
            f"calibration={calibration!r}"
        )
    if inputs == "logits":
        return (calibration or Calibration()).apply(check_logits(values, name))
    if calibration is not None:
        raise ValueError(
            "Invalid value for argument `calibration`. Expected None with "
            "inputs='probs' (calibration maps logits). Received: "
            f"calibration={calibration!r}"
        )
    probs = check_logits(values, name)
    sums = probs.sum(axis=1)
    bad = np.flatnonzero(
        np.any(probs < 0, axis=1) | (np.abs(sums - 1) > SIMPLEX_TOLERANCE)
    )
    if bad.size:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected rows of "
            "non-negative probabilities summing to 1 (inputs='probs'). "
            f"Received: rows {bad[:5].tolist()} off the simplex"
        )
    return probs / sums[:, None]


def _train_prior(train_prior, num_classes) -> np.ndarray:
    prior = priors_lib.normalize(train_prior, "train_prior")
    if prior.shape[0] != num_classes or np.any(prior <= 0):
        raise ValueError(
            "Invalid value for argument `train_prior`. Expected "
            f"{num_classes} positive class priors (one per output class). "
            f"Received: train_prior={prior.tolist()}"
        )
    return prior


def confusion_matrix(
    logits_or_probs: Any,
    labels: Any,
    *,
    inputs: str = "logits",
    calibration: Calibration | None = None,
) -> np.ndarray:
    """The joint confusion `C[i, j] = P(ŷ=i, y=j)` of labelled data, for BBSE.

    `ŷ` is the argmax of the calibrated probabilities, as `estimate_prior`
    predicts on the deployment data: pass the same `calibration` to both.

    Example:

    >>> confusion_matrix([[2.0, 0.0], [0.0, 1.0]], [0, 0]).tolist()
    [[0.5, 0.0], [0.5, 0.0]]
    """
    probs = _probabilities(
        logits_or_probs, inputs, calibration, "logits_or_probs"
    )
    n, c = probs.shape
    y = np.asarray(labels)
    if y.shape != (n,) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(
            "Invalid value for argument `labels`. Expected integer class "
            f"indices of shape ({n},). Received: labels of shape {y.shape}"
        )
    if y.min() < 0 or y.max() >= c:
        raise ValueError(
            f"Invalid value for argument `labels`. Expected classes in [0, {c}). "
            f"Received: labels in [{y.min()}, {y.max()}]"
        )
    joint = np.zeros((c, c))
    np.add.at(joint, (probs.argmax(axis=1), y), 1.0)
    return joint / n


def _em(probs, train, tol, max_iter):
    prior, iterations, converged = train.copy(), 0, False
    while iterations < max_iter:
        weighted = probs * (prior / train)
        new = (weighted / weighted.sum(axis=1, keepdims=True)).mean(axis=0)
        iterations += 1
        change = float(np.max(np.abs(new - prior)))
        prior = new
        if change < tol:
            converged = True
            break
    return prior / prior.sum(), iterations, converged


def _bbse(probs, train, confusion, ridge):
    c = probs.shape[1]
    if confusion is None:
        raise ValueError(
            "Invalid value for argument `confusion`. Expected the holdout's "
            "joint confusion matrix (`confusion_matrix`) for method='bbse'. "
            "Received: confusion=None"
        )
    joint = np.asarray(confusion, dtype=np.float64)
    if (
        joint.shape != (c, c)
        or not np.all(np.isfinite(joint))
        or np.any(joint < 0)
        or abs(joint.sum() - 1) > SIMPLEX_TOLERANCE
    ):
        raise ValueError(
            "Invalid value for argument `confusion`. Expected a non-negative "
            f"[{c}, {c}] joint distribution summing to 1. Received: "
            f"confusion of shape {joint.shape} summing to {joint.sum():.6g}"
        )
    q = np.bincount(probs.argmax(axis=1), minlength=c) / probs.shape[0]
    gram = joint.T @ joint
    lam = ridge * np.trace(gram) / c
    w = np.linalg.solve(gram + lam * np.eye(c), joint.T @ q)
    prior = np.clip(w, 0.0, None) * train
    if prior.sum() <= 0:
        return train.copy()
    return prior / prior.sum()


def estimate_prior(
    logits_or_probs: Any,
    train_prior: Any,
    method: str = "em",
    *,
    inputs: str = "logits",
    calibration: Calibration | None = None,
    confusion: Any = None,
    tol: float = 1e-6,
    max_iter: int = 1000,
    ridge: float = 1e-6,
    return_info: bool = False,
):
    """Estimates the class prior of unlabelled deployment predictions.

    Args:
        logits_or_probs: `[N, C]` model outputs on the deployment data.
        train_prior: `[C]` positive training priors or counts (the mix the
            model's probabilities are calibrated to).
        method: "em" (MLLS) or "bbse".
        inputs: "logits" (softmax after `calibration`) or "probs".
        calibration: a `Calibration` fitted on the holdout (logits only).
        confusion: `[C, C]` holdout joint confusion (`confusion_matrix`),
            for "bbse".
        tol: EM stops when `max |Δpi| < tol`.
        max_iter: most EM iterations.
        ridge: BBSE's Tikhonov ridge, relative to the mean eigenvalue of
            `C^T C`.
        return_info: return a `PriorEstimate` instead of the prior.

    Returns:
        The float64 target prior `[C]`, or a `PriorEstimate`.

    Example:

    >>> probs = np.array([[0.9, 0.1], [0.9, 0.1], [0.2, 0.8]])
    >>> est = estimate_prior(probs, [0.5, 0.5], inputs="probs", return_info=True)
    >>> [round(float(p), 3) for p in est.prior], est.converged
    ([0.847, 0.153], True)
    """
    _choice(method, "method", METHODS)
    probs = _probabilities(
        logits_or_probs, inputs, calibration, "logits_or_probs"
    )
    train = _train_prior(train_prior, probs.shape[1])
    tol, ridge = float(tol), float(ridge)
    if not np.isfinite(tol) or tol <= 0:
        raise ValueError(
            "Invalid value for argument `tol`. Expected a finite float > 0. "
            f"Received: tol={tol}"
        )
    if not np.isfinite(ridge) or ridge < 0:
        raise ValueError(
            "Invalid value for argument `ridge`. Expected a finite float "
            f">= 0. Received: ridge={ridge}"
        )
    if (
        isinstance(max_iter, bool)
        or not isinstance(max_iter, int)
        or max_iter < 1
    ):
        raise ValueError(
            "Invalid value for argument `max_iter`. Expected an int >= 1. "
            f"Received: max_iter={max_iter!r}"
        )
    if method == "em":
        prior, iterations, converged = _em(probs, train, tol, max_iter)
    else:
        prior = _bbse(probs, train, confusion, ridge)
        iterations, converged = 0, True
    if not return_info:
        return prior
    return PriorEstimate(prior, method, iterations, converged)
