"""Label-distribution-aware margin (LDAM) loss (Cao et al., NeurIPS 2019)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops
from keras.saving import register_keras_serializable

from la_keras.losses import base
from la_keras.losses.class_balanced import DeferredReweighting


def ldam_margins(class_counts, max_m=0.5):
    """Per-class LDAM margins `m_y ∝ n_y**(-1/4)`, the largest equal to `max_m`.

    Args:
        class_counts: per-class training counts (or priors: the margins only
            depend on their ratios), each `> 0`.
        max_m: the margin of the rarest class, `>= 0`.

    Returns:
        float64 numpy array of shape `[C]`.
    """
    counts = base.check_class_counts(class_counts)
    max_m = base.check_float(max_m, "max_m")
    margins = 1.0 / np.sqrt(np.sqrt(counts))
    return margins * (max_m / margins.max())


def _ldam(y_true, y_pred, margins, s, class_weights):
    logits = base.float32_logits(y_pred, margins.shape[0])
    labels = base.dense_labels(y_true, logits)
    shifted = logits - labels * ops.convert_to_tensor(margins, "float32")
    log_probs = ops.log_softmax(s * shifted, axis=-1)
    terms = labels * log_probs
    if class_weights is not None:
        terms = terms * ops.cast(
            ops.convert_to_tensor(class_weights), "float32"
        )
    return -ops.sum(terms, axis=-1)


def ldam_loss(
    y_true, y_pred, class_counts, max_m=0.5, s=30.0, class_weights=None
):
    """LDAM loss (Cao et al., 2019), one value per example.

    Formula:

    ```python
    m = max_m * n**(-1/4) / max(n**(-1/4))
    loss = -w[y] * log softmax(s * (y_pred - m[y] * one_hot(y)))[y]
    ```

    Soft labels `q` subtract `m * q` and give
    `-sum_j w[j] * q[j] * log softmax(...)[j]` (the weighted cross-entropy
    of PyTorch's `F.cross_entropy(weight=w)` before its reduction).

    Args:
        y_true: integer labels `[B]` / `[B, 1]`, or one-hot / soft labels
            `[B, C]`.
        y_pred: logits `[B, C]` (Cao et al. use a normalized linear head,
            so they are cosines); float16 / bfloat16 are computed in float32.
        class_counts: per-class training counts, each `> 0`.
        max_m: the largest margin (rarest class).
        s: scale applied after subtracting the margin, `> 0`.
        class_weights: optional per-class weights `w`, length `C`.

    Returns:
        Per-example losses of shape `[B]`.
    """
    margins = ldam_margins(class_counts, max_m)
    s = base.check_float(s, "s", strict_minimum=True)
    if class_weights is not None:
        class_weights = base.check_class_weights(
            class_weights, margins.shape[0]
        )
    return _ldam(y_true, y_pred, margins, s, class_weights)


@register_keras_serializable(package="la_keras")
class LDAMLoss(base.LongTailLoss):
    """Label-distribution-aware margin loss (Cao et al., 2019).

    Subtracts a class-dependent margin `m_y ∝ n_y**(-1/4)` from the
    true-class logit, scales all logits by `s` and takes the softmax
    cross-entropy, optionally weighted per class, as in the official
    LDAM-DRW code. The logits are usually those of a normalized linear head
    (cosines in `[-1, 1]`); the loss itself does not normalize.

    The per-class weights live in a non-trainable `keras.Variable`, so a
    training loop can change them between epochs (`set_class_weights`)
    without retracing its `tf.function`; build the loss inside
    `strategy.scope()` to mirror that variable under `tf.distribute`. With
    `drw_start_epoch`, `on_epoch_begin(epoch)` applies deferred re-weighting
    (LDAM-DRW): ones before that epoch, `class_balanced_weights(
    class_counts, drw_beta)` from it on. Call `on_epoch_begin` at the start
    of every epoch (0-based), resumed runs included.

    With the default `"sum_over_batch_size"` the weighted sum is divided by
    the batch size (PyTorch's weighted `cross_entropy` divides by the sum of
    the weights of the batch instead).

    Formula:

    ```python
    m = max_m * n**(-1/4) / max(n**(-1/4))
    loss = -w[y] * log softmax(s * (logits - m[y] * one_hot(y)))[y]
    ```

    Args:
        class_counts: per-class training counts, each `> 0` (`>= 1` with
            `drw_start_epoch`).
        max_m: the margin of the rarest class. 0.5 in Cao et al.
        s: logit scale, `> 0`. 30 in the official code.
        class_weights: initial per-class weights `w`, length `C`. `None`
            (default) means ones.
        drw_start_epoch: optional 0-based epoch at which `on_epoch_begin`
            switches on class-balanced weights (160 of 200 in Cao et al.).
            `None` (default): `on_epoch_begin` does nothing.
        drw_beta: effective-number `beta` of the DRW weights.
        reduction, name, dtype: as in `LongTailLoss` (`keras.losses.Loss`).

    Example:

    ```python
    loss = la_keras.losses.LDAMLoss([5000, 500, 50], drw_start_epoch=160)
    loss.on_epoch_begin(0)  # ones until epoch 160
    loss([0, 2], [[0.9, 0.1, -0.3], [0.1, 0.2, 0.3]])
    ```

    References:
        - [Cao et al., 2019](https://arxiv.org/abs/1906.07413)
    """

    config_keys = (
        "class_counts",
        "max_m",
        "s",
        "class_weights",
        "drw_start_epoch",
        "drw_beta",
    )

    def __init__(
        self,
        class_counts,
        max_m=0.5,
        s=30.0,
        class_weights=None,
        drw_start_epoch=None,
        drw_beta=0.9999,
        reduction="sum_over_batch_size",
        name="ldam_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_counts = base.check_class_counts(class_counts)
        self.max_m = base.check_float(max_m, "max_m")
        self.s = base.check_float(s, "s", strict_minimum=True)
        self.margins = ldam_margins(self.class_counts, self.max_m)
        self.drw_beta = base.check_beta(drw_beta)
        self._drw = None
        if drw_start_epoch is not None:
            self._drw = DeferredReweighting(
                self.class_counts, drw_start_epoch, self.drw_beta
            )
            drw_start_epoch = self._drw.start_epoch
        self.drw_start_epoch = drw_start_epoch
        if class_weights is None:
            class_weights = np.ones(self.num_classes)
        class_weights = base.check_class_weights(
            class_weights, self.num_classes
        )
        self._class_weights = keras.Variable(
            class_weights.astype(np.float32),
            trainable=False,
            dtype="float32",
            name="class_weights",
        )

    @property
    def num_classes(self):
        return int(self.class_counts.shape[0])

    @property
    def class_weights(self):
        """The current per-class weights, as a float32 numpy array."""
        return ops.convert_to_numpy(self._class_weights)

    def set_class_weights(self, class_weights):
        """Assigns new per-class weights; traced train steps see them."""
        values = base.check_class_weights(class_weights, self.num_classes)
        self._class_weights.assign(values.astype(np.float32))

    def on_epoch_begin(self, epoch):
        """Applies the DRW schedule for the 0-based `epoch`, if any.

        Returns:
            The per-class weights now in use.
        """
        if self._drw is not None:
            self._drw.update(self, epoch)
        return self.class_weights

    def call(self, y_true, y_pred):
        return _ldam(y_true, y_pred, self.margins, self.s, self._class_weights)
