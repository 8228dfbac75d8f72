"""Softmax equalization loss (Tan et al., CVPR 2020)."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops
from keras.saving import register_keras_serializable

from la_keras import priors as priors_lib
from la_keras.losses import base


def _check_probability(value, name, hint):
    return base.check_float(value, name, 0.0, 1.0, hint=hint)


def tail_classes(class_counts, lambda_=None):
    """The equalization loss's tail indicator `T_lambda(f)`, as float32 0/1.

    Args:
        class_counts: per-class training counts or priors; zeros allowed.
        lambda_: frequency threshold: class `k` is a tail class when its
            frequency `f_k = n_k / sum(n)` is `< lambda_`. `None` means
            `1 / C` (rarer than under a uniform distribution).
    """
    frequencies = priors_lib.normalize(class_counts, name="class_counts")
    if lambda_ is None:
        lambda_ = 1.0 / frequencies.shape[0]
    lambda_ = _check_probability(lambda_, "lambda_", "a class frequency")
    return (frequencies < lambda_).astype(np.float32)


def _equalized(y_true, y_pred, tail, gamma, seed):
    logits = base.float32_logits(y_pred, tail.shape[0])
    labels = base.dense_labels(y_true, logits)
    suppress = ops.convert_to_tensor(tail) * (1.0 - labels)
    if gamma < 1.0:
        draws = keras.random.uniform(ops.shape(logits), seed=seed)
        suppress = suppress * ops.cast(draws < gamma, "float32")
    weights = 1.0 - suppress
    # log sum_k w_k exp(z_k), with the w_k = 0 terms left out.
    kept = weights > 0.0
    weighted = ops.where(
        kept, logits + ops.log(ops.where(kept, weights, 1.0)), -1e30
    )
    log_normalizer = ops.logsumexp(weighted, axis=-1)
    return log_normalizer * ops.sum(labels, axis=-1) - ops.sum(
        labels * logits, axis=-1
    )


def equalized_crossentropy(
    y_true, y_pred, class_counts, gamma=1.0, lambda_=None, seed=None
):
    """Softmax equalization loss (Tan et al., 2020), one value per example.

    Formula (Tan et al., eqs. for softmax EQL):

    ```python
    w[k] = 1 - beta[k] * T_lambda(f[k]) * (1 - y[k])
    loss = -sum_j y[j] * log(exp(z[j]) / sum_k w[k] * exp(z[k]))
    ```

    with `T_lambda(f) = 1` if `f < lambda_` else 0, and `beta[k]` Bernoulli
    with `P(beta[k] = 1) = gamma`, drawn independently for every example and
    class.

    Args:
        y_true: integer labels `[B]` / `[B, 1]`, or one-hot / soft labels
            `[B, C]`.
        y_pred: logits `[B, C]`; float16 / bfloat16 are computed in float32.
        class_counts: per-class training counts or priors (zeros allowed).
        gamma: probability that a tail class is left out of the denominator;
            1 (default) is deterministic, 0 is plain cross-entropy.
        lambda_: tail frequency threshold; `None` means `1 / C`.
        seed: seed of the Bernoulli draws when `gamma < 1`: an int, a
            `keras.random.SeedGenerator`, or `None`.

    Returns:
        Per-example losses of shape `[B]`.
    """
    tail = tail_classes(class_counts, lambda_)
    gamma = _check_probability(gamma, "gamma", "a probability")
    return _equalized(y_true, y_pred, tail, gamma, seed)


@register_keras_serializable(package="la_keras")
class EqualizedLoss(base.LongTailLoss):
    """Softmax equalization loss (Tan et al., 2020).

    Tan et al.'s softmax EQL, as compared against in Menon et al. (2021):
    for an example of class `y`, the logits of *tail* classes (training
    frequency below `lambda_`) other than `y` are dropped from the softmax
    denominator with probability `gamma`, so head-class examples do not push
    tail-class scores down. The true class always stays in the denominator.

    What is implemented, exactly: frequencies are `f_k = n_k / sum(n)`;
    `beta` is drawn independently for every (example, class) pair with a
    `keras.random.SeedGenerator` seeded by `seed` (a new draw every call);
    `gamma=1` (default) makes the loss deterministic, always dropping the
    non-target tail classes. `lambda_=None` (default) puts the threshold at
    the uniform frequency `1 / C`; this default is la_keras's, not a value
    from the paper: pass the paper's `lambda_` and `gamma` for a faithful
    comparison. Soft labels use `w[k] = 1 - beta[k] T(f[k]) (1 - y[k])` and
    `-sum_j y[j] log p[j]` as written in the paper.

    Formula:

    ```python
    w[k] = 1 - beta[k] * T_lambda(f[k]) * (1 - y[k])
    p[j] = exp(z[j]) / sum_k w[k] * exp(z[k])
    loss = -sum_j y[j] * log p[j]
    ```

    Args:
        class_counts: per-class training counts or priors (zeros allowed).
        gamma: probability in `[0, 1]` that `beta = 1`; 0 is plain
            cross-entropy.
        lambda_: tail frequency threshold in `[0, 1]`; `None` means `1 / C`.
        seed: int seed for the Bernoulli draws when `gamma < 1`, or `None`.
        reduction, name, dtype: as in `LongTailLoss` (`keras.losses.Loss`).

    Example:

    ```python
    loss = la_keras.losses.EqualizedLoss([5000, 500, 50], lambda_=0.05)
    loss([0, 2], [[2.0, 0.5, -1.0], [0.1, 0.2, 0.3]])
    ```

    References:
        - [Tan et al., 2020](https://arxiv.org/abs/2003.05176), softmax EQL
        - [Menon et al., 2021](https://arxiv.org/abs/2007.07314)
    """

    config_keys = ("class_counts", "gamma", "lambda_", "seed")

    def __init__(
        self,
        class_counts,
        gamma=1.0,
        lambda_=None,
        seed=None,
        reduction="sum_over_batch_size",
        name="equalized_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_counts = base.check_class_weights(
            class_counts, name="class_counts"
        )
        self.gamma = _check_probability(gamma, "gamma", "a probability")
        self.lambda_ = None if lambda_ is None else float(lambda_)
        self.seed = base.check_int(seed, "seed", allow_none=True)
        self.tail = tail_classes(self.class_counts, self.lambda_)
        self._seed_generator = (
            keras.random.SeedGenerator(self.seed) if self.gamma < 1.0 else None
        )

    @property
    def num_classes(self):
        return int(self.class_counts.shape[0])

    def call(self, y_true, y_pred):
        return _equalized(
            y_true, y_pred, self.tail, self.gamma, self._seed_generator
        )
