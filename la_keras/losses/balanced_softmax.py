"""Balanced softmax cross-entropy (Ren et al., NeurIPS 2020)."""

from __future__ import annotations

import numpy as np
from keras import ops
from keras.saving import register_keras_serializable

from la_keras import priors as priors_lib
from la_keras.losses import base


def _log_counts(class_counts):
    # log(n_y) up to a constant, which the softmax ignores: log of the priors.
    counts = base.check_class_counts(class_counts)
    return np.log(priors_lib.normalize(counts, name="class_counts")).astype(
        np.float32
    )


def _balanced_softmax(y_true, y_pred, log_counts):
    logits = base.float32_logits(y_pred, log_counts.shape[0])
    logits = logits + ops.convert_to_tensor(log_counts)
    return base.sparse_or_dense_crossentropy(y_true, logits)


def balanced_softmax_crossentropy(y_true, y_pred, class_counts):
    """Balanced softmax cross-entropy (Ren et al., 2020), one per example.

    Formula:

    ```python
    loss = -log softmax(y_pred + log(class_counts))[y_true]
    ```

    Args:
        y_true: integer labels `[B]` / `[B, 1]`, or one-hot / soft labels
            `[B, C]`.
        y_pred: logits `[B, C]`; float16 / bfloat16 are computed in float32.
        class_counts: per-class training counts (or priors), each `> 0`.

    Returns:
        Per-example losses of shape `[B]`.
    """
    return _balanced_softmax(y_true, y_pred, _log_counts(class_counts))


@register_keras_serializable(package="la_keras")
class BalancedSoftmaxLoss(base.LongTailLoss):
    """Balanced softmax cross-entropy (Ren et al., 2020).

    Adds `log(n_y)` to each logit before the softmax cross-entropy. Since the
    softmax ignores a constant shift, this is exactly the logit-adjusted loss
    `LogitAdjustedLoss(class_counts, tau=1.0)` of Menon et al. (2021) with
    the counts as priors (up to that loss's `epsilon=1e-12` inside the log).
    It is kept under its own name because it is a separately published
    method in the paper's comparison. Every class needs a positive count:
    `log(0)` is refused rather than smoothed.

    Formula:

    ```python
    loss = -log softmax(logits + log(class_counts))[label]
    ```

    Args:
        class_counts: per-class training counts (or priors: only their ratios
            matter), each `> 0`.
        reduction, name, dtype: as in `LongTailLoss` (`keras.losses.Loss`).

    Example:

    ```python
    loss = la_keras.losses.BalancedSoftmaxLoss([5000, 500, 50])
    loss([0, 2], [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    ```

    References:
        - [Ren et al., 2020](https://arxiv.org/abs/2007.10740)
        - [Menon et al., 2021](https://arxiv.org/abs/2007.07314)
    """

    config_keys = ("class_counts",)

    def __init__(
        self,
        class_counts,
        reduction="sum_over_batch_size",
        name="balanced_softmax_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_counts = base.check_class_counts(class_counts)
        self._log_counts = _log_counts(self.class_counts)

    @property
    def num_classes(self):
        return int(self.class_counts.shape[0])

    def call(self, y_true, y_pred):
        return _balanced_softmax(y_true, y_pred, self._log_counts)
