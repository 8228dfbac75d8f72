"""Long-tail metrics of logits, raw and post-hoc adjusted, and the tau sweep."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from la_keras import metrics as metrics_lib
from la_keras.layers import LogitAdjustment

DEFAULT_TAU_GRID = tuple(np.round(np.arange(0.0, 2.01, 0.25), 2).tolist())


def _float_or_none(value) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value


def adjust_logits(logits, priors, tau, layer=None) -> np.ndarray:
    """Post-hoc adjusted logits, through the `LogitAdjustment` layer.

    The same layer (and so the same maths) as `LogitAdjustedModel` in
    post-hoc mode and the exported SavedModel:
    `logits - log(priors**tau + 1e-12)`.

    Args:
        logits: `[N, C]` raw logits.
        priors: class priors or counts.
        tau: the temperature.
        layer: a `LogitAdjustment` layer to reuse (its tau is set).
    """
    if layer is None:
        layer = LogitAdjustment(priors, tau=tau)
    else:
        layer.tau = tau
    return np.asarray(layer(np.asarray(logits, np.float32)), np.float32)


def classification_report(
    logits: np.ndarray,
    labels: np.ndarray,
    train_counts: Sequence[int],
    adjustment: np.ndarray | None = None,
    many_threshold: int = 100,
    few_threshold: int = 20,
) -> dict:
    """Top-1, balanced, per-class and many/medium/few-shot accuracy.

    Args:
        logits: `[N, C]` model outputs.
        labels: `[N]` integer labels.
        train_counts: per-class training counts (define the shot groups).
        adjustment: optional `[C]` vector subtracted from the logits first
            (for post-hoc adjustment prefer `adjust_logits`).
        many_threshold: classes with more training images are many-shot.
        few_threshold: classes with fewer training images are few-shot.

    Returns:
        A JSON-ready dict; accuracies of classes or groups with no
        evaluation example are `None`.
    """
    logits = np.asarray(logits, dtype=np.float32)
    labels = np.asarray(labels).reshape(-1)
    if adjustment is not None:
        logits = logits - np.asarray(adjustment, dtype=np.float32)
    num_classes = logits.shape[-1]
    per_class = metrics_lib.PerClassAccuracy(num_classes)
    balanced = metrics_lib.BalancedAccuracy(num_classes)
    shots = metrics_lib.ShotAccuracy(
        np.asarray(train_counts),
        many_threshold=many_threshold,
        few_threshold=few_threshold,
    )
    for metric in (per_class, balanced, shots):
        metric.update_state(labels, logits)
    shot_values = {k: _float_or_none(v) for k, v in shots.result().items()}
    return {
        "top1": float(np.mean(np.argmax(logits, axis=-1) == labels)),
        "balanced_accuracy": _float_or_none(balanced.result()),
        **shot_values,
        "per_class_accuracy": [
            _float_or_none(v) for v in np.asarray(per_class.result())
        ],
    }


def sweep_tau(
    logits: np.ndarray,
    labels: np.ndarray,
    priors: Sequence[float],
    taus: Sequence[float] = DEFAULT_TAU_GRID,
) -> list[dict]:
    """Post-hoc adjusted top-1 and balanced accuracy for each tau.

    The logits are adjusted by one `LogitAdjustment` layer (`adjust_logits`).

    Returns:
        `[{"tau", "top1", "balanced_accuracy"}, ...]` in the order of `taus`.
    """
    logits = np.asarray(logits, dtype=np.float32)
    labels = np.asarray(labels).reshape(-1)
    num_classes = logits.shape[-1]
    rows = []
    layer = LogitAdjustment(priors, tau=0.0)
    for tau in taus:
        adjusted = adjust_logits(logits, priors, tau, layer)
        balanced = metrics_lib.BalancedAccuracy(num_classes)
        balanced.update_state(labels, adjusted)
        rows.append(
            {
                "tau": float(tau),
                "top1": float(np.mean(np.argmax(adjusted, -1) == labels)),
                "balanced_accuracy": _float_or_none(balanced.result()),
            }
        )
    return rows


def select_tau(sweep: Sequence[dict], key: str = "balanced_accuracy") -> float:
    """The tau of `sweep` with the highest `key` (the smallest on ties)."""
    if not sweep:
        raise ValueError("Invalid value for argument `sweep`: it is empty.")
    best = max(
        sweep,
        key=lambda row: (
            -np.inf if row[key] is None else row[key],
            -row["tau"],
        ),
    )
    return float(best["tau"])
