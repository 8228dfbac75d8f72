"""Calibration of logits fitted on a holdout: temperature scaling and BCTS.

Prior-shift estimation (`la_keras.prior_shift`) assumes calibrated class
probabilities; a network's softmax usually is not. Two maps fitted by
minimising the negative log-likelihood (NLL) on held-out labelled data:

- "ts", temperature scaling (Guo et al. 2017): `softmax(logits / T)`;
- "bcts", bias-corrected temperature scaling (Alexandari et al. 2020):
  `softmax(logits / T + b)`, one bias per class.

The NLL is convex in `(1/T, b)` (a multinomial logistic regression on the
logits), so a damped Newton method with a backtracking line search finds
its minimum deterministically, in numpy and float64, without scipy. The
biases are defined up to a common constant; they are returned with mean 0.

This module imports only numpy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["KINDS", "Calibration", "fit_calibration", "check_logits"]

KINDS = ("none", "ts", "bcts")


def check_logits(logits: Any, name: str = "logits") -> np.ndarray:
    """Returns `logits` as float64 `[N, C]`; ValueError if not 2-D finite."""
    try:
        values = np.asarray(logits, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a numeric array "
            f"of shape [N, num_classes]. Received: {name}={logits!r}"
        ) from e
    if values.ndim != 2 or values.shape[0] == 0 or values.shape[1] < 2:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected shape "
            "[N, num_classes] with N >= 1 and num_classes >= 2. Received: "
            f"{name} of shape {values.shape}"
        )
    if not np.all(np.isfinite(values)):
        rows = np.flatnonzero(~np.all(np.isfinite(values), axis=1))
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected finite values. "
            f"Received: NaN or inf in rows {rows[:5].tolist()}"
        )
    return values


def _check_labels(labels: Any, n: int, num_classes: int) -> np.ndarray:
    values = np.asarray(labels)
    if values.shape != (n,) or not np.issubdtype(values.dtype, np.integer):
        raise ValueError(
            "Invalid value for argument `labels`. Expected integer class "
            f"indices of shape ({n},). Received: labels of shape "
            f"{values.shape} and dtype {values.dtype}"
        )
    if values.min() < 0 or values.max() >= num_classes:
        raise ValueError(
            "Invalid value for argument `labels`. Expected classes in "
            f"[0, {num_classes}). Received: labels in "
            f"[{values.min()}, {values.max()}]"
        )
    return values.astype(np.int64)


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def _nll(z, onehot, a, b) -> float:
    s = a * z + b
    m = s.max(axis=1, keepdims=True)
    lse = m[:, 0] + np.log(np.exp(s - m).sum(axis=1))
    return float(np.mean(lse - (s * onehot).sum(axis=1)))


class Calibration:
    """A calibration map `softmax(logits / temperature + bias)`.

    Args:
        kind: "none" (plain softmax), "ts" or "bcts".
        temperature: positive float (1 for "none").
        bias: `[num_classes]` floats for "bcts" (None otherwise).

    Example:

    >>> cal = Calibration("ts", temperature=2.0)
    >>> [round(float(p), 3) for p in cal.apply([[2.0, 0.0]])[0]]
    [0.731, 0.269]
    >>> Calibration.from_dict(cal.to_dict()).temperature
    2.0
    """

    def __init__(self, kind: str = "none", temperature: float = 1.0, bias=None):
        if kind not in KINDS:
            raise ValueError(
                "Invalid value for argument `kind`. Expected one of "
                f"{', '.join(repr(k) for k in KINDS)}. Received: kind={kind!r}"
            )
        temperature = float(temperature)
        if not np.isfinite(temperature) or temperature <= 0:
            raise ValueError(
                "Invalid value for argument `temperature`. Expected a finite "
                f"float > 0. Received: temperature={temperature}"
            )
        if (bias is None) != (kind != "bcts"):
            raise ValueError(
                "Invalid value for argument `bias`. Expected a vector for "
                f"kind 'bcts' and None otherwise. Received: kind={kind!r}, "
                f"bias={bias!r}"
            )
        if bias is not None:
            bias = np.asarray(bias, dtype=np.float64)
            if bias.ndim != 1 or not np.all(np.isfinite(bias)):
                raise ValueError(
                    "Invalid value for argument `bias`. Expected a finite "
                    f"1-D vector. Received: bias={bias!r}"
                )
        self.kind = kind
        self.temperature = temperature
        self.bias = bias

    def apply(self, logits: Any) -> np.ndarray:
        """Calibrated probabilities `[N, C]` (float64) of raw `logits`."""
        z = check_logits(logits) / self.temperature
        if self.bias is not None:
            if self.bias.shape[0] != z.shape[1]:
                raise ValueError(
                    "Invalid value for argument `logits`. Expected "
                    f"{self.bias.shape[0]} classes (the calibration's). "
                    f"Received: logits of shape {z.shape}"
                )
            z = z + self.bias
        return _softmax(z)

    def to_dict(self) -> dict:
        bias = None if self.bias is None else [float(v) for v in self.bias]
        return {
            "kind": self.kind,
            "temperature": self.temperature,
            "bias": bias,
        }

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        if not isinstance(data, dict) or "kind" not in data:
            raise ValueError(
                "Invalid value for argument `data`. Expected a dict from "
                f"Calibration.to_dict. Received: data={data!r}"
            )
        return cls(data["kind"], data.get("temperature", 1.0), data.get("bias"))

    def __repr__(self) -> str:
        return (
            f"Calibration(kind={self.kind!r}, temperature={self.temperature:g})"
        )


def fit_calibration(
    logits: Any,
    labels: Any,
    kind: str = "bcts",
    *,
    max_iter: int = 100,
    tol: float = 1e-10,
) -> Calibration:
    """Fits temperature (and biases) by minimising the holdout's NLL.

    Damped Newton on `(a, b) = (1/T, bias)` with a backtracking line search
    keeping `a > 0` and decreasing the NLL; stops when a step lowers the NLL
    by less than `tol`.

    Args:
        logits: `[N, C]` raw holdout logits.
        labels: `[N]` integer holdout labels.
        kind: "ts", "bcts" or "none" (returns the identity map).
        max_iter: most Newton steps.
        tol: NLL decrease below which the fit stops.

    Returns:
        A `Calibration`.

    Example:

    >>> z = np.array([[4.0, 0.0], [0.0, 4.0], [4.0, 0.0], [0.0, 4.0]])
    >>> fit_calibration(z, np.array([0, 1, 1, 0]), "ts").temperature > 10
    True
    """
    if kind not in KINDS:
        raise ValueError(
            "Invalid value for argument `kind`. Expected one of "
            f"{', '.join(repr(k) for k in KINDS)}. Received: kind={kind!r}"
        )
    z = check_logits(logits)
    n, c = z.shape
    y = _check_labels(labels, n, c)
    if kind == "none":
        return Calibration()
    onehot = np.eye(c)[y]
    with_bias = kind == "bcts"
    a, b = 1.0, np.zeros(c)
    loss = _nll(z, onehot, a, b)
    for _ in range(max_iter):
        p = _softmax(a * z + b)
        r = p - onehot
        pz = (p * z).sum(axis=1)
        grad = [np.mean((r * z).sum(axis=1))]
        h_aa = np.mean((p * z * z).sum(axis=1) - pz**2)
        if with_bias:
            grad = np.concatenate([grad, r.mean(axis=0)])
            h_ab = (p * z - p * pz[:, None]).mean(axis=0)
            h_bb = np.diag(p.mean(axis=0)) - p.T @ p / n
            hess = np.block(
                [[np.array([[h_aa]]), h_ab[None]], [h_ab[:, None], h_bb]]
            )
        else:
            hess = np.array([[h_aa]])
        grad = np.asarray(grad)
        # The biases' common shift is free: a small ridge fixes the step.
        ridge = 1e-9 * (np.trace(hess) / len(grad) + 1e-12)
        step = -np.linalg.solve(hess + ridge * np.eye(len(grad)), grad)
        t, improved = 1.0, False
        while t > 1e-10:
            new_a = a + t * step[0]
            new_b = b + t * step[1:] if with_bias else b
            if new_a > 0:
                new_loss = _nll(z, onehot, new_a, new_b)
                if new_loss <= loss:
                    improved = True
                    break
            t *= 0.5
        if not improved:
            break
        decrease = loss - new_loss
        a, b, loss = new_a, new_b, new_loss
        if decrease < tol:
            break
    bias = b - b.mean() if with_bias else None
    return Calibration(kind, 1.0 / a, bias)
