"""The general pairwise margin loss (Menon et al., ICLR 2021, eq. 11)."""

from __future__ import annotations

import numpy as np
from keras import ops
from keras.saving import register_keras_serializable

from la_keras import priors as priors_lib
from la_keras.losses import base


def _check_margins(margins):
    try:
        values = priors_lib.to_numpy(margins).astype(np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(
            "Invalid value for argument `margins`. Expected a C x C matrix of "
            f"floats. Received: margins={margins!r}"
        ) from e
    if (
        values.ndim != 2
        or values.shape[0] != values.shape[1]
        or not values.size
    ):
        raise ValueError(
            "Invalid value for argument `margins`. Expected a non-empty square "
            f"C x C matrix, got shape {values.shape}. Received: "
            f"margins={margins!r}"
        )
    off_diagonal = ~np.eye(values.shape[0], dtype=bool)
    if not np.all(np.isfinite(values[off_diagonal])):
        raise ValueError(
            "Invalid value for argument `margins`. Expected finite "
            f"off-diagonal entries. Received: margins={margins!r}"
        )
    values = values.copy()
    np.fill_diagonal(values, 0.0)
    return values


def _pairwise_margin(y_true, y_pred, margins, class_weights):
    logits = base.float32_logits(y_pred, margins.shape[0], what="margins")
    labels = base.dense_labels(y_true, logits)
    # Row y of Delta (the label-weighted mix of rows for soft labels). With a
    # zero diagonal, log(1 + sum_{k != y} exp(D[y, k] + f_k - f_y)) is
    # logsumexp_k(D[y, k] + f_k) - f_y.
    rows = ops.matmul(labels, ops.convert_to_tensor(margins, "float32"))
    target = ops.sum(labels * logits, axis=-1)
    losses = ops.logsumexp(rows + logits, axis=-1) - target
    if class_weights is not None:
        alpha = ops.convert_to_tensor(class_weights, "float32")
        losses = losses * ops.sum(labels * alpha, axis=-1)
    return losses


def pairwise_margin_loss(y_true, y_pred, margins, class_weights=None):
    """Pairwise margin loss of Menon et al. (2021, eq. 11), per example.

    Formula:

    ```python
    loss = alpha[y] * log(1 + sum_{k != y} exp(margins[y, k] + f[k] - f[y]))
    ```

    Soft or one-hot labels `q` use the label-weighted row
    `sum_j q[j] * margins[j]` and weight `sum_j q[j] * alpha[j]`; with
    `margins[j, k] = tau * log(pi[k] / pi[j])` this is exactly the
    soft-label logit-adjusted cross-entropy.

    Args:
        y_true: integer labels `[B]` / `[B, 1]`, or one-hot / soft labels
            `[B, C]`.
        y_pred: logits `[B, C]`; float16 / bfloat16 are computed in float32.
        margins: `C x C` matrix `Delta`; `margins[y, k]` is the margin that
            the score of the true class `y` must exceed that of class `k`
            by. The diagonal is ignored.
        class_weights: optional per-class weights `alpha`, length `C`.
            Defaults to ones.

    Returns:
        Per-example losses of shape `[B]`.
    """
    margins = _check_margins(margins)
    if class_weights is not None:
        class_weights = base.check_class_weights(
            class_weights, margins.shape[0]
        )
    return _pairwise_margin(y_true, y_pred, margins, class_weights)


@register_keras_serializable(package="la_keras")
class PairwiseMarginLoss(base.LongTailLoss):
    """The general pairwise margin loss (Menon et al., ICLR 2021, eq. 11).

    A weighted softmax cross-entropy with a margin `Delta[y, k]` between the
    true class `y` and each other class `k`. It covers the logit-adjusted
    loss (`alpha = 1`, `Delta[y, k] = tau * log(pi[k] / pi[y])`), the
    balanced softmax (`tau = 1`), class weighting (`Delta = 0`) and LDAM-like
    margins (`Delta[y, k] = m_y`).

    Formula:

    ```python
    loss = alpha[y] * log(1 + sum_{k != y} exp(Delta[y, k] + f[k] - f[y]))
    ```

    Args:
        margins: `C x C` matrix `Delta` (nested list, numpy array or tensor);
            the diagonal is ignored (treated as 0).
        class_weights: per-class weights `alpha`, length `C`, finite and
            non-negative. `None` (default) means ones.
        reduction, name, dtype: as in `LongTailLoss` (`keras.losses.Loss`).

    Example:

    ```python
    pi = np.array([0.7, 0.2, 0.1])
    delta = np.log(pi[None, :] / pi[:, None])  # logit adjustment, tau = 1
    loss = la_keras.losses.PairwiseMarginLoss(delta)
    loss([0, 2], [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    ```

    References:
        - [Menon et al., 2021](https://arxiv.org/abs/2007.07314), eq. (11)
    """

    config_keys = ("margins", "class_weights")

    def __init__(
        self,
        margins,
        class_weights=None,
        reduction="sum_over_batch_size",
        name="pairwise_margin_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.margins = _check_margins(margins)
        self.class_weights = (
            None
            if class_weights is None
            else base.check_class_weights(class_weights, self.num_classes)
        )

    @property
    def num_classes(self):
        return int(self.margins.shape[0])

    def call(self, y_true, y_pred):
        return _pairwise_margin(
            y_true, y_pred, self.margins, self.class_weights
        )
