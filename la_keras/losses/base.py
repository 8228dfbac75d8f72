"""What the la_keras losses share: logits, labels and argument checks.

Every loss file builds on these helpers, so the label convention (integer
class ids `[B]` / `[B, 1]` of any dtype, or one-hot / soft labels `[B, C]`),
the label check of `la_keras.labels` and the argument errors are written
once.

Invalid integer labels (outside `[0, C)` or not whole numbers) raise a
`ValueError` eagerly and an `InvalidArgumentError` in a TensorFlow graph.
Under `jax.jit` and XLA (`jit_compile=True`), where no error can be raised,
their loss is NaN, so a training loop's NaN stop catches them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from keras import ops
from keras.losses import Loss

from la_keras import labels as labels_lib
from la_keras import priors as priors_lib
from la_keras.adjustment import check_num_classes

__all__ = [
    "check_class_counts",
    "check_beta",
    "check_class_weights",
    "check_float",
    "check_int",
    "dense_labels",
    "float32_logits",
    "LongTailLoss",
    "sparse_or_dense_crossentropy",
]


class LongTailLoss(Loss):
    """A Keras `Loss` whose config holds the attributes in `config_keys`.

    The base of every la_keras loss. Their common constructor arguments:

    - `reduction`: Keras reduction, `"sum_over_batch_size"` by default (under
      `tf.distribute` it averages over the global batch).
    - `name`: optional name for the loss instance.
    - `dtype`: dtype of the loss computations, `None` for floatx;
      float16 / bfloat16 logits are always computed in float32.

    Subclasses implement `call` (one loss per example, never reduced) and
    name their constructor arguments in `config_keys`; numpy vectors and
    matrices (priors, class counts, margins) are written as (nested) lists
    of Python floats, so configs are JSON-ready.
    """

    config_keys: tuple[str, ...] = ()

    def get_config(self):
        config = super().get_config()
        for key in self.config_keys:
            value = getattr(self, key)
            if isinstance(value, np.ndarray):
                value = value.astype(np.float64).tolist()
            config[key] = value
        return config


def float32_logits(y_pred, num_classes=None, what="class counts"):
    """`y_pred` as float32, after checking its class axis against `num_classes`.

    float16 / bfloat16 logits are computed in float32 from here on.
    """
    y_pred = ops.convert_to_tensor(y_pred)
    if num_classes is not None:
        check_num_classes(y_pred, num_classes, what=what)
    return ops.cast(y_pred, "float32")


def dense_labels(y_true, logits):
    """Labels as a float32 `[B, C]` matrix: one-hot for class ids.

    Class ids have shape `[B]` or `[B, 1]` and any dtype (`Loss.__call__`
    casts them to float); they are checked with `la_keras.labels.class_ids`.
    Where that check cannot raise (`jax.jit`, XLA), the row of an invalid
    label is NaN, so its loss is NaN. Labels with the rank of `logits` and
    more than one column are one-hot or soft labels, returned as float32.
    """
    y_true = ops.convert_to_tensor(y_true)
    if labels_lib.is_dense(y_true, logits):
        num_classes = logits.shape[-1]
        if None not in (num_classes, y_true.shape[-1]) and (
            y_true.shape[-1] != num_classes
        ):
            raise ValueError(
                f"Labels of shape {tuple(y_true.shape)} do not match logits of "
                f"shape {tuple(logits.shape)}: one-hot or soft labels need one "
                "column per class; integer labels need shape [B] or [B, 1]."
            )
        return ops.cast(y_true, "float32")
    ids, valid = labels_lib.class_ids(y_true, logits)
    one_hot = ops.one_hot(ids, ops.shape(logits)[-1], dtype="float32")
    return one_hot + ops.where(valid, 0.0, float("nan"))[..., None]


def sparse_or_dense_crossentropy(y_true, logits):
    """Softmax cross-entropy of float32 `logits`, one value per example.

    `y_true`: class ids or one-hot / soft labels, see `dense_labels`.
    """
    log_probs = ops.log_softmax(logits, axis=-1)
    return -ops.sum(dense_labels(y_true, logits) * log_probs, axis=-1)


def check_float(
    value: Any,
    name: str,
    minimum: float = 0.0,
    maximum: float | None = None,
    *,
    strict_minimum: bool = False,
    strict_maximum: bool = False,
    hint: str | None = None,
) -> float:
    """`value` as a Python float; ValueError unless finite and in range.

    Args:
        value: the argument.
        name: its name, for the error message.
        minimum: lower bound, included unless `strict_minimum`.
        maximum: optional upper bound, included unless `strict_maximum`.
        hint: optional words on the argument, shown in the error.
    """
    if maximum is None:
        expected = (
            f"a finite float {'>' if strict_minimum else '>='} {minimum:g}"
        )
    else:
        expected = (
            f"a float in {'(' if strict_minimum else '['}{minimum:g}, "
            f"{maximum:g}{')' if strict_maximum else ']'}"
        )
    if hint:
        expected = f"{expected} ({hint})"
    message = (
        f"Invalid value for argument `{name}`. Expected {expected}. "
        f"Received: {name}={value!r}"
    )
    try:
        number = float(value)
    except (TypeError, ValueError) as e:
        raise ValueError(message) from e
    below = number <= minimum if strict_minimum else number < minimum
    above = maximum is not None and (
        number >= maximum if strict_maximum else number > maximum
    )
    if not np.isfinite(number) or below or above:
        raise ValueError(message)
    return number


def check_beta(beta: Any) -> float:
    """The effective-number `beta` of Cui et al. (2019), a float in [0, 1)."""
    return check_float(
        beta,
        "beta",
        0.0,
        1.0,
        strict_maximum=True,
        hint="Cui et al. use 0.9999 on CIFAR-LT",
    )


def check_int(
    value: Any, name: str, minimum: int | None = None, allow_none=False
) -> int | None:
    """`value` as a Python int (not a bool); ValueError otherwise."""
    if value is None and allow_none:
        return None
    valid = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not valid or (minimum is not None and value < minimum):
        expected = "an int" if minimum is None else f"an int >= {minimum}"
        if allow_none:
            expected += " or None"
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected {expected}. "
            f"Received: {name}={value!r}"
        )
    return int(value)


def check_class_weights(
    class_weights, num_classes=None, name="class_weights"
) -> np.ndarray:
    """Validates per-class weights; returns them as a float64 numpy vector.

    Weights are not normalized. They must be 1-D, finite, non-negative and
    not all zero (checked with `la_keras.priors.normalize`), with
    `num_classes` entries when that is given.
    """
    priors_lib.normalize(class_weights, name=name)
    values = priors_lib.to_numpy(class_weights).astype(np.float64)
    if num_classes is not None and values.shape[0] != num_classes:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected {num_classes} "
            f"entries, one per class. Received: {name} of length "
            f"{values.shape[0]}"
        )
    return values


def check_class_counts(
    class_counts, name="class_counts", minimum=0.0
) -> np.ndarray:
    """Validates per-class counts; returns them, unnormalized, as float64.

    Args:
        class_counts: 1-D per-class training counts: a list, a numpy array or
            a tensor. Checked with `check_class_weights`.
        name: argument name used in error messages.
        minimum: every count must be `> 0` when `minimum == 0`, else
            `>= minimum`.
    """
    values = check_class_weights(class_counts, name=name)
    bad = values <= 0 if minimum == 0 else values < minimum
    if np.any(bad):
        expected = "> 0" if minimum == 0 else f">= {minimum:g}"
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected every class count "
            f"{expected}; classes {np.flatnonzero(bad).tolist()} are not. "
            f"Received: {name}={priors_lib.as_float_list(values)}"
        )
    return values
