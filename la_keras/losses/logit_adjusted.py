"""The logit-adjusted softmax cross-entropy (Menon et al., ICLR 2021)."""

from __future__ import annotations

import numpy as np
from keras import ops
from keras.losses import Loss
from keras.saving import register_keras_serializable

from la_keras import priors as priors_lib


def log_adjustment(priors, tau=1.0, epsilon=1e-12):
    """Returns `log(priors**tau + epsilon)` as float32 numpy, in float64 maths.

    This is the one place where the adjustment term is computed; the loss, the
    `LogitAdjustment` layer and the post-hoc model all use it, so the loss's
    `+` and the post-hoc `-` always agree.

    Args:
        priors: class probabilities or counts, see `la_keras.priors.normalize`.
        tau: non-negative temperature on the priors.
        epsilon: added inside the log so that a zero prior stays finite.

    Returns:
        float32 numpy array of shape `[num_classes]`.
    """
    tau = _check_tau(tau)
    epsilon = _check_epsilon(epsilon)
    values = priors_lib.normalize(priors)
    powered = np.power(values, tau)
    if epsilon == 0.0 and np.any(powered == 0.0):
        raise ValueError(
            "Invalid value for argument `epsilon`: some classes have a zero "
            "prior and epsilon=0, so log(prior) is -inf. Use epsilon > 0 "
            "(the official release uses 1e-12)."
        )
    return np.log(powered + epsilon).astype(np.float32)


def _check_tau(tau):
    try:
        tau = float(tau)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"Invalid value for argument `tau`. Expected a float >= 0. "
            f"Received: tau={tau!r}"
        ) from e
    if not np.isfinite(tau) or tau < 0:
        raise ValueError(
            "Invalid value for argument `tau`. Expected a finite float >= 0 "
            f"(0 disables the adjustment). Received: tau={tau}"
        )
    return tau


def _check_epsilon(epsilon):
    epsilon = float(epsilon)
    if not np.isfinite(epsilon) or epsilon < 0:
        raise ValueError(
            "Invalid value for argument `epsilon`. Expected a finite float "
            f">= 0. Received: epsilon={epsilon}"
        )
    return epsilon


def check_num_classes(y_pred, num_classes, what="priors"):
    """Raises if the static class axis of `y_pred` differs from `num_classes`."""
    classes = y_pred.shape[-1] if len(y_pred.shape) else None
    if classes is not None and classes != num_classes:
        raise ValueError(
            f"The {what} have {num_classes} classes but the logits have "
            f"{classes} (logits shape {tuple(y_pred.shape)}). Pass one "
            "prior per output class."
        )


def sparse_or_dense_crossentropy(y_true, logits):
    """Softmax cross-entropy for integer labels or one-hot / soft labels.

    Integer labels have shape `[B]` or `[B, 1]` (any dtype; `Loss.__call__`
    casts them to float, so they are cast back to int here). Labels with
    the same rank as `logits` and more than one column are dense
    probabilities.
    """
    logits = ops.cast(logits, "float32")
    num_classes = logits.shape[-1]
    y_rank = len(y_true.shape)
    p_rank = len(logits.shape)
    dense = y_rank == p_rank and y_true.shape[-1] != 1
    if dense and num_classes is not None and y_true.shape[-1] is not None:
        if y_true.shape[-1] != num_classes:
            raise ValueError(
                f"Labels of shape {tuple(y_true.shape)} do not match logits of "
                f"shape {tuple(logits.shape)}: one-hot or soft labels need one "
                "column per class; integer labels need shape [B] or [B, 1]."
            )
    log_probs = ops.log_softmax(logits, axis=-1)
    if dense:
        y_true = ops.cast(y_true, "float32")
        return -ops.sum(y_true * log_probs, axis=-1)
    if y_rank == p_rank:
        y_true = ops.squeeze(y_true, axis=-1)
    labels = ops.cast(y_true, "int32")
    one_hot = ops.one_hot(labels, ops.shape(logits)[-1], dtype="float32")
    return -ops.sum(one_hot * log_probs, axis=-1)


def logit_adjusted_crossentropy(
    y_true, y_pred, priors, tau=1.0, from_logits=True, epsilon=1e-12
):
    """Logit-adjusted softmax cross-entropy, one value per example.

    Formula:

    ```python
    loss = -log softmax(y_pred + log(priors**tau + epsilon))[y_true]
    ```

    Args:
        y_true: integer labels `[B]` / `[B, 1]`, or one-hot / soft labels
            `[B, C]`.
        y_pred: logits `[B, C]` (or probabilities with `from_logits=False`).
        priors: class probabilities or counts, length `C`.
        tau: temperature on the priors; 0 gives plain cross-entropy.
        from_logits: whether `y_pred` are logits. With probabilities, their
            log is taken first.
        epsilon: added to `priors**tau` inside the log.

    Returns:
        Per-example losses of shape `[B]`.
    """
    adjustment = log_adjustment(priors, tau, epsilon)
    return _adjusted_crossentropy(y_true, y_pred, adjustment, from_logits)


def _adjusted_crossentropy(y_true, y_pred, adjustment, from_logits):
    y_pred = ops.convert_to_tensor(y_pred)
    check_num_classes(y_pred, adjustment.shape[0])
    logits = ops.cast(y_pred, "float32")
    if not from_logits:
        logits = ops.log(ops.clip(logits, 1e-7, 1.0))
    logits = logits + ops.convert_to_tensor(adjustment, "float32")
    return sparse_or_dense_crossentropy(ops.convert_to_tensor(y_true), logits)


@register_keras_serializable(package="la_keras")
class LogitAdjustedLoss(Loss):
    """Logit-adjusted softmax cross-entropy (Menon et al., ICLR 2021).

    Trains a classifier whose raw logits estimate the *balanced* class
    posterior: the loss adds `tau * log(prior)` to the logits before the
    softmax, so rare classes get a larger margin. Predict with the raw logits
    (no adjustment at test time).

    Formula:

    ```python
    loss = -log softmax(logits + log(priors**tau + epsilon))[label]
    ```

    Args:
        priors: class probabilities or raw counts (list, numpy array or
            tensor), one per class; normalized internally. Classes with zero
            prior are allowed.
        tau: temperature on the priors, `>= 0`. `tau=0` is plain
            cross-entropy.
        from_logits: whether `y_pred` are logits (default) or probabilities.
        epsilon: added to `priors**tau` inside the log, as in the official
            release (1e-12), so zero priors stay finite.
        reduction: Keras reduction. Defaults to `"sum_over_batch_size"`.
        name: optional name for the loss instance.
        dtype: dtype of the loss computations. Defaults to `None` (floatx);
            float16 / bfloat16 logits are always computed in float32.

    Example:

    ```python
    loss = la_keras.LogitAdjustedLoss([5000, 500, 50], tau=1.0)
    loss([0, 2], [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    ```

    References:
        - [Menon et al., 2021](https://arxiv.org/abs/2007.07314)
    """

    def __init__(
        self,
        priors,
        tau=1.0,
        from_logits=True,
        epsilon=1e-12,
        reduction="sum_over_batch_size",
        name="logit_adjusted_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.priors = priors_lib.normalize(priors)
        self.tau = _check_tau(tau)
        self.from_logits = bool(from_logits)
        self.epsilon = _check_epsilon(epsilon)
        self._adjustment = log_adjustment(self.priors, self.tau, self.epsilon)

    @property
    def num_classes(self):
        return int(self.priors.shape[0])

    def call(self, y_true, y_pred):
        return _adjusted_crossentropy(
            y_true, y_pred, self._adjustment, self.from_logits
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "priors": priors_lib.as_float_list(self.priors),
                "tau": self.tau,
                "from_logits": self.from_logits,
                "epsilon": self.epsilon,
            }
        )
        return config
