"""The logit-adjusted softmax cross-entropy (Menon et al., ICLR 2021)."""

from __future__ import annotations

from keras import ops
from keras.saving import register_keras_serializable

from la_keras import adjustment as adjustment_lib
from la_keras import priors as priors_lib
from la_keras.losses import base


def logit_adjusted_crossentropy(
    y_true,
    y_pred,
    priors,
    tau=1.0,
    from_logits=True,
    epsilon=adjustment_lib.DEFAULT_EPSILON,
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
    adjustment = adjustment_lib.log_adjustment(priors, tau, epsilon)
    return _adjusted_crossentropy(y_true, y_pred, adjustment, from_logits)


def _adjusted_crossentropy(y_true, y_pred, adjustment, from_logits):
    logits = base.float32_logits(y_pred, adjustment.shape[0], what="priors")
    if not from_logits:
        logits = ops.log(ops.clip(logits, 1e-7, 1.0))
    logits = logits + ops.convert_to_tensor(adjustment, "float32")
    return base.sparse_or_dense_crossentropy(y_true, logits)


@register_keras_serializable(package="la_keras")
class LogitAdjustedLoss(base.LongTailLoss):
    """Logit-adjusted softmax cross-entropy (Menon et al., ICLR 2021).

    Trains a classifier whose raw logits estimate the *balanced* class
    posterior: the loss adds `tau * log(prior)` to the logits before the
    softmax, so rare classes get a larger margin. Predict with the raw logits
    (no adjustment at test time).

    Integer labels must be whole numbers in `[0, C)`: others raise an error
    (eagerly and in `tf.function`), or give a NaN loss where no error can be
    raised (`jax.jit`, XLA), see `la_keras.losses.base`.

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
        reduction, name, dtype: as in `LongTailLoss` (`keras.losses.Loss`).

    Example:

    ```python
    loss = la_keras.LogitAdjustedLoss([5000, 500, 50], tau=1.0)
    loss([0, 2], [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    ```

    References:
        - [Menon et al., 2021](https://arxiv.org/abs/2007.07314)
    """

    config_keys = ("priors", "tau", "from_logits", "epsilon")

    def __init__(
        self,
        priors,
        tau=1.0,
        from_logits=True,
        epsilon=adjustment_lib.DEFAULT_EPSILON,
        reduction="sum_over_batch_size",
        name="logit_adjusted_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.priors = priors_lib.normalize(priors)
        self.tau = adjustment_lib.check_tau(tau)
        self.from_logits = bool(from_logits)
        self.epsilon = adjustment_lib.check_epsilon(epsilon)
        self._adjustment = adjustment_lib.log_adjustment(
            self.priors, self.tau, self.epsilon
        )

    @property
    def num_classes(self):
        return int(self.priors.shape[0])

    def call(self, y_true, y_pred):
        return _adjusted_crossentropy(
            y_true, y_pred, self._adjustment, self.from_logits
        )
