"""The logit adjustment term, `log(prior**tau + epsilon)`, in one place.

Every part of la_keras that adjusts logits uses this module: the loss adds
the term to the logits before the softmax (`LogitAdjustedLoss`), the
post-hoc layer and model subtract it at inference (`LogitAdjustment`,
`LogitAdjustedModel`), and evaluation and serving go through those. So the
loss's `+` and the post-hoc `-` always agree, with the official release's
epsilon convention (1e-12), and the argument checks exist once.

This is a ground-floor module: it imports only numpy, `keras.ops` and
`la_keras.priors`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops

from la_keras import priors as priors_lib

DEFAULT_EPSILON = 1e-12

__all__ = [
    "DEFAULT_EPSILON",
    "check_epsilon",
    "check_num_classes",
    "check_tau",
    "check_zero_priors",
    "log_adjustment",
    "log_adjustment_tensor",
    "log_target_tensor",
    "retarget",
]

MODES = ("baseline", "posthoc", "loss")


def _non_negative(value: Any, name: str, hint: str = "") -> float:
    expected = f"Invalid value for argument `{name}`. Expected a finite float"
    try:
        number = float(value)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"{expected} >= 0{hint}. Received: {name}={value!r}"
        ) from e
    if not np.isfinite(number) or number < 0:
        raise ValueError(f"{expected} >= 0{hint}. Received: {name}={number}")
    return number


def check_tau(tau: Any) -> float:
    """Returns `tau` as a Python float; ValueError unless finite and >= 0."""
    return _non_negative(tau, "tau", " (0 disables the adjustment)")


def check_epsilon(epsilon: Any) -> float:
    """Returns `epsilon` as a Python float; ValueError unless finite and >= 0."""
    return _non_negative(epsilon, "epsilon")


def check_zero_priors(values: np.ndarray, epsilon: float) -> None:
    """Raises if `epsilon` is 0 and a prior (or its power) is 0: log is -inf."""
    if epsilon == 0.0 and np.any(values == 0.0):
        raise ValueError(
            "Invalid value for argument `epsilon`: some classes have a zero "
            "prior and epsilon=0, so log(prior) is -inf. Use epsilon > 0 "
            "(the official release uses 1e-12)."
        )


def log_adjustment(
    priors: Any, tau: Any = 1.0, epsilon: Any = DEFAULT_EPSILON
) -> np.ndarray:
    """Returns `log(priors**tau + epsilon)` as float32 numpy, in float64 maths.

    Args:
        priors: class probabilities or counts, see `la_keras.priors.normalize`.
        tau: non-negative temperature on the priors.
        epsilon: added inside the log so that a zero prior stays finite.

    Returns:
        float32 numpy array of shape `[num_classes]`.
    """
    tau = check_tau(tau)
    epsilon = check_epsilon(epsilon)
    values = priors_lib.normalize(priors)
    powered = np.power(values, tau)
    check_zero_priors(powered, epsilon)
    return np.log(powered + epsilon).astype(np.float32)


def log_adjustment_tensor(priors: np.ndarray, tau, epsilon: float):
    """`log(priors**tau + epsilon)` as a float32 tensor, `tau` a tensor.

    The graph form of `log_adjustment` for layers whose tau is a variable
    (`LogitAdjustment`): `priors` must already be normalized
    (`la_keras.priors.normalize`) and `epsilon` checked.
    """
    check_zero_priors(np.asarray(priors), float(epsilon))
    values = ops.convert_to_tensor(np.asarray(priors, np.float32))
    powered = ops.power(values, ops.cast(tau, "float32"))
    return ops.log(powered + float(epsilon))


def log_target_tensor(target_prior, epsilon: float = DEFAULT_EPSILON):
    """`log(target_prior / sum(target_prior) + epsilon)` on the last axis.

    The graph form of `retarget`'s target term, for a prior that is a
    tensor (a serving request's): `[num_classes]` or `[batch, num_classes]`,
    normalized here. The caller checks that its entries are finite and
    non-negative with a positive sum.
    """
    values = ops.cast(target_prior, "float32")
    total = ops.sum(values, axis=-1, keepdims=True)
    return ops.log(values / total + float(epsilon))


def check_num_classes(y_pred, num_classes: int, what: str = "priors") -> None:
    """Raises if the static class axis of `y_pred` differs from `num_classes`."""
    classes = y_pred.shape[-1] if len(y_pred.shape) else None
    if classes is not None and classes != num_classes:
        raise ValueError(
            f"The {what} have {num_classes} classes but the logits have "
            f"{classes} (logits shape {tuple(y_pred.shape)}). Pass one "
            "prior per output class."
        )


def retarget(
    logits,
    train_prior,
    target_prior,
    tau: Any = 1.0,
    *,
    mode: str = "posthoc",
    epsilon: Any = DEFAULT_EPSILON,
):
    """Logits whose argmax is the Bayes rule for the class mix `target_prior`.

    Formula:

    ```
    posthoc / baseline: logits - log(train_prior**tau + eps) + log(target_prior + eps)
    loss:               logits + log(target_prior + eps)
    ```

    The paper's post-hoc rule swaps the training prior for a uniform one;
    the same algebra serves any target mix. A model trained with plain
    cross-entropy ("baseline", "posthoc") has logits of the training mix,
    so the training prior is taken out first; a loss-mode model's raw logits
    already estimate the balanced (uniform-mix) posterior, so only the
    target prior is added (`train_prior` and `tau` are then unused). A
    uniform `target_prior` gives the balanced rule of each mode, up to a
    constant.

    Args:
        logits: `[..., num_classes]` raw logits of the model.
        train_prior: the training class priors or counts (may be None in
            loss mode).
        target_prior: the deployment class priors or counts.
        tau: the temperature of the training prior (post-hoc's tau).
        mode: how the model was trained: "baseline", "posthoc" or "loss".
        epsilon: added inside each log, so that a zero prior stays finite.

    Returns:
        float32 logits of the same shape.

    Example:

    >>> out = retarget([[2.0, 1.0]], [0.9, 0.1], [0.5, 0.5])
    >>> [round(float(v), 3) for v in out[0]]
    [1.412, 2.609]
    """
    if mode not in MODES:
        raise ValueError(
            "Invalid value for argument `mode`. Expected one of "
            f"{', '.join(repr(m) for m in MODES)}: how the model's logits "
            f"were trained. Received: mode={mode!r}"
        )
    logits = ops.cast(ops.convert_to_tensor(logits), "float32")
    shift = log_adjustment(target_prior, 1.0, epsilon)
    if mode != "loss":
        train = log_adjustment(train_prior, tau, epsilon)
        if len(train) != len(shift):
            raise ValueError(
                "Invalid value for argument `target_prior`: it has "
                f"{len(shift)} classes and `train_prior` {len(train)}. Pass "
                "one prior per output class for both."
            )
        shift = shift - train
    check_num_classes(logits, len(shift), "target priors")
    return logits + ops.convert_to_tensor(shift)
