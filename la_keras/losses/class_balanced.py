"""Class-balanced weights, deferred re-weighting and the softmax focal loss.

- `class_balanced_weights`: Cui et al. (2019)'s weights by effective number.
- `DeferredReweighting`: Cao et al. (2019)'s DRW schedule over those weights.
- `FocalLoss`: Lin et al. (2017)'s focal loss, softmax form.
- `ClassBalancedLoss`: class-balanced softmax cross-entropy or focal loss.
"""

from __future__ import annotations

import numpy as np
from keras import ops
from keras.saving import register_keras_serializable

from la_keras import priors as priors_lib
from la_keras.losses import base


def _check_gamma(gamma):
    return base.check_float(gamma, "gamma", hint="0 is plain cross-entropy")


def class_balanced_weights(class_counts, beta=0.9999):
    """Per-class weights by effective number (Cui et al., 2019).

    Formula:

    ```python
    w[y] = (1 - beta) / (1 - beta**n[y]);  w = w / sum(w) * C
    ```

    `beta = 0` gives ones; `beta -> 1` tends to inverse class frequency.

    Args:
        class_counts: raw per-class training counts, each `>= 1`.
            Probabilities are refused: the effective number depends on the
            scale of the counts.
        beta: in `[0, 1)`.

    Returns:
        float64 numpy array of shape `[C]` that sums to `C`.

    Example:

    >>> la_keras.losses.class_balanced_weights([5000, 50], beta=0.999)
    array([0.0936..., 1.9063...])
    """
    counts = base.check_class_counts(class_counts, minimum=1.0)
    beta = base.check_beta(beta)
    if beta == 0.0:
        return np.ones_like(counts)
    # 1 - beta**n, accurately for beta close to 1.
    effective_number = -np.expm1(counts * np.log(beta))
    weights = (1.0 - beta) / effective_number
    return weights / weights.sum() * counts.shape[0]


class DeferredReweighting:
    """Deferred re-weighting (DRW) schedule of Cao et al. (2019).

    Ones until epoch `start_epoch`, then `class_balanced_weights(counts,
    beta)` (normalized to sum to `C`), as in the official LDAM-DRW code
    (`idx = epoch // 160; betas = [0, 0.9999]`). Epochs count from 0, as in
    `keras.callbacks.Callback.on_epoch_begin`.

    The weights reach a loss through a `keras.Variable` that the loss holds
    (`LDAMLoss.set_class_weights`): assigning it changes the weights used by
    an already traced `tf.function` train step, also under `tf.distribute`,
    without retracing. Call `update(loss, epoch)` at the start of every
    epoch, resumed runs included: it is idempotent.

    Args:
        class_counts: raw per-class training counts, each `>= 1`.
        start_epoch: first epoch (0-based) with class-balanced weights;
            Cao et al. use 160 of 200 on CIFAR-LT.
        beta: effective-number hyperparameter, 0.9999 in Cao et al.

    Example:

    ```python
    drw = DeferredReweighting(counts, start_epoch=160)
    loss = la_keras.losses.LDAMLoss(counts)
    for epoch in range(200):
        drw.update(loss, epoch)
        ...  # train one epoch with `loss`
    ```

    References:
        - [Cao et al., 2019](https://arxiv.org/abs/1906.07413)
        - [Cui et al., 2019](https://arxiv.org/abs/1901.05555)
    """

    def __init__(self, class_counts, start_epoch, beta=0.9999):
        self.class_counts = base.check_class_counts(class_counts, minimum=1.0)
        self.start_epoch = base.check_int(start_epoch, "start_epoch", 0)
        self.beta = base.check_beta(beta)
        self._balanced = class_balanced_weights(self.class_counts, self.beta)

    @property
    def num_classes(self):
        return int(self.class_counts.shape[0])

    def weights_for_epoch(self, epoch):
        """float32 per-class weights for the 0-based `epoch`."""
        if int(epoch) < self.start_epoch:
            return np.ones(self.num_classes, np.float32)
        return self._balanced.astype(np.float32)

    def update(self, loss, epoch):
        """Sets `loss`'s class weights for `epoch`; returns them."""
        weights = self.weights_for_epoch(epoch)
        loss.set_class_weights(weights)
        return weights

    def callback(self, loss):
        """A `keras.callbacks.Callback` that calls `update` for `model.fit`."""
        import keras

        return keras.callbacks.LambdaCallback(
            on_epoch_begin=lambda epoch, logs=None: self.update(loss, epoch)
        )

    def get_config(self):
        return {
            "class_counts": priors_lib.as_float_list(self.class_counts),
            "start_epoch": self.start_epoch,
            "beta": self.beta,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _weighted_focal(labels, logits, gamma, class_weights):
    log_probs = ops.log_softmax(logits, axis=-1)
    terms = labels * log_probs
    if gamma != 0.0:
        # Clipped so that the gradient of (1 - p)**gamma stays finite at p=1.
        one_minus_p = ops.maximum(1.0 - ops.exp(log_probs), 1e-12)
        terms = terms * ops.power(one_minus_p, gamma)
    if class_weights is not None:
        terms = terms * ops.convert_to_tensor(class_weights, "float32")
    return -ops.sum(terms, axis=-1)


def _focal(y_true, y_pred, gamma, class_weights):
    num_classes = None if class_weights is None else class_weights.shape[0]
    logits = base.float32_logits(y_pred, num_classes)
    return _weighted_focal(
        base.dense_labels(y_true, logits), logits, gamma, class_weights
    )


def softmax_focal_crossentropy(y_true, y_pred, gamma=2.0, class_weights=None):
    """Softmax focal loss (Lin et al., 2017), one value per example.

    Formula:

    ```python
    loss = -w[y] * (1 - p[y])**gamma * log(p[y]),  p = softmax(y_pred)
    ```

    Soft labels `q` give `-sum_j w[j] * q[j] * (1 - p[j])**gamma * log p[j]`.

    Args:
        y_true: integer labels `[B]` / `[B, 1]`, or one-hot / soft labels
            `[B, C]`.
        y_pred: logits `[B, C]`; float16 / bfloat16 are computed in float32.
        gamma: focusing parameter `>= 0`; 0 is cross-entropy.
        class_weights: optional per-class weights `w`, length `C`.

    Returns:
        Per-example losses of shape `[B]`.
    """
    gamma = _check_gamma(gamma)
    if class_weights is not None:
        class_weights = base.check_class_weights(class_weights)
    return _focal(y_true, y_pred, gamma, class_weights)


def class_balanced_crossentropy(
    y_true, y_pred, class_counts, beta=0.9999, loss_type="softmax", gamma=2.0
):
    """Class-balanced loss (Cui et al., 2019), one value per example.

    Formula:

    ```python
    loss = class_balanced_weights(class_counts, beta)[y] * L(y_pred, y)
    ```

    with `L` the softmax cross-entropy (`loss_type="softmax"`) or the
    softmax focal loss (`loss_type="focal"`, with `gamma`).

    Returns:
        Per-example losses of shape `[B]`.
    """
    weights = class_balanced_weights(class_counts, beta)
    gamma = (
        _check_gamma(gamma) if _check_loss_type(loss_type) == "focal" else 0.0
    )
    return _focal(y_true, y_pred, gamma, weights)


def _check_loss_type(loss_type):
    if loss_type not in ("softmax", "focal"):
        raise ValueError(
            "Invalid value for argument `loss_type`. Expected 'softmax' or "
            f"'focal'. Received: loss_type={loss_type!r}"
        )
    return loss_type


@register_keras_serializable(package="la_keras")
class FocalLoss(base.LongTailLoss):
    """Softmax focal loss (Lin et al., 2017).

    Down-weights well-classified examples. This is the multi-class softmax
    form, not the sigmoid (one-vs-all) form of the RetinaNet paper, and it
    has no `alpha` balancing term (see `ClassBalancedLoss` for per-class
    weights).

    Formula:

    ```python
    loss = -(1 - p[y])**gamma * log(p[y]),  p = softmax(logits)
    ```

    Args:
        gamma: focusing parameter `>= 0`; 0 is plain cross-entropy. 2.0 is
            Lin et al.'s default.
        reduction, name, dtype: as in `LongTailLoss` (`keras.losses.Loss`).

    Example:

    ```python
    loss = la_keras.losses.FocalLoss(gamma=2.0)
    loss([0, 2], [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    ```

    References:
        - [Lin et al., 2017](https://arxiv.org/abs/1708.02002)
    """

    config_keys = ("gamma",)

    def __init__(
        self,
        gamma=2.0,
        reduction="sum_over_batch_size",
        name="focal_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.gamma = _check_gamma(gamma)

    def call(self, y_true, y_pred):
        return _focal(y_true, y_pred, self.gamma, None)


@register_keras_serializable(package="la_keras")
class ClassBalancedLoss(base.LongTailLoss):
    """Class-balanced loss by effective number of samples (Cui et al., 2019).

    Weights each example's softmax cross-entropy or softmax focal loss by
    `(1 - beta) / (1 - beta**n_y)`, normalized so the `C` weights sum to
    `C`. Cui et al.'s focal variant is sigmoid-based; this one uses the
    softmax focal loss of `FocalLoss`. With the default
    `"sum_over_batch_size"` the weighted sum is divided by the batch size,
    not by the sum of the weights.

    Formula:

    ```python
    w = (1 - beta) / (1 - beta**class_counts);  w = w / sum(w) * C
    loss = -w[y] * (1 - p[y])**gamma * log(p[y])  # gamma = 0 for "softmax"
    ```

    Args:
        class_counts: raw per-class training counts, each `>= 1`.
        beta: effective-number hyperparameter in `[0, 1)`; 0 gives
            unweighted losses.
        loss_type: `"softmax"` (cross-entropy) or `"focal"`.
        gamma: focal parameter `>= 0`, used only with `loss_type="focal"`.
        reduction, name, dtype: as in `LongTailLoss` (`keras.losses.Loss`).

    Example:

    ```python
    loss = la_keras.losses.ClassBalancedLoss([5000, 500, 50], beta=0.999)
    loss([0, 2], [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    ```

    References:
        - [Cui et al., 2019](https://arxiv.org/abs/1901.05555)
        - [Lin et al., 2017](https://arxiv.org/abs/1708.02002)
    """

    config_keys = ("class_counts", "beta", "loss_type", "gamma")

    def __init__(
        self,
        class_counts,
        beta=0.9999,
        loss_type="softmax",
        gamma=2.0,
        reduction="sum_over_batch_size",
        name="class_balanced_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_counts = base.check_class_counts(class_counts, minimum=1.0)
        self.beta = base.check_beta(beta)
        self.loss_type = _check_loss_type(loss_type)
        self.gamma = _check_gamma(gamma)
        self.class_weights = class_balanced_weights(
            self.class_counts, self.beta
        )

    @property
    def num_classes(self):
        return int(self.class_counts.shape[0])

    def call(self, y_true, y_pred):
        gamma = self.gamma if self.loss_type == "focal" else 0.0
        return _focal(y_true, y_pred, gamma, self.class_weights)
