"""Sparse class labels: integer class ids, checked against the class count.

Every la_keras loss that takes integer labels and every metric of
`la_keras.metrics` reads them with `class_ids`, so a label outside
`[0, num_classes)` or a float label that is not a whole number (`2.5`) is
refused in one place, instead of silently giving a loss of 0 (a one-hot row
of zeros) or being truncated:

- concrete tensors (TensorFlow eager, JAX outside `jit`, torch, numpy):
  `ValueError`;
- a TensorFlow graph (`tf.function`, `model.fit`): a `tf.debugging.Assert`
  that the returned mask depends on raises `InvalidArgumentError` when the
  step runs;
- where no error can be raised, under `jax.jit` and under XLA
  (`jit_compile=True`, which drops TensorFlow assertions): the returned
  `valid` mask is False for those examples; the losses make their loss NaN
  (and the metrics their result), which a training loop's NaN stop catches.

Integer-valued float labels are accepted: `keras.losses.Loss.__call__`
casts `y_true` to the loss dtype before `call` sees it.

This is a ground-floor module: it imports only numpy and Keras (and
TensorFlow or JAX for their graph and tracing checks).
"""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = ["class_ids", "is_dense"]


def is_dense(y_true: Any, y_pred: Any) -> bool:
    """Whether `y_true` holds one-hot / soft labels rather than class ids.

    Labels with the rank of `y_pred` and a class axis other than 1 are
    dense (`[B, C]`); class ids are `[B]` or `[B, 1]`.
    """
    return len(y_true.shape) == len(y_pred.shape) and y_true.shape[-1] != 1


def class_ids(y_true: Any, y_pred: Any) -> tuple[Any, Any]:
    """Checked integer class ids of sparse labels, and which are valid.

    Args:
        y_true: class ids `[B]` or `[B, 1]` (the rank of `y_pred` with a
            trailing 1), of any integer or float dtype.
        y_pred: logits or probabilities `[B, C]`; `C` is the class count.

    Returns:
        `(ids, valid)`: int32 ids `[B]` and a bool mask `[B]`, False where a
        label is not a whole number in `[0, C)`. The mask is all True unless
        the check cannot raise (`jax.jit`, XLA; see the module docstring).

    Raises:
        ValueError: for an invalid label, when the labels are concrete.
        tf.errors.InvalidArgumentError: for an invalid label, when the
            TensorFlow graph that uses the mask runs.
    """
    y_true = ops.convert_to_tensor(y_true)
    if len(y_true.shape) == len(y_pred.shape):
        y_true = ops.squeeze(y_true, axis=-1)
    num_classes = y_pred.shape[-1]
    if num_classes is None:
        num_classes = ops.shape(y_pred)[-1]
    values = y_true
    if "float" not in keras.backend.standardize_dtype(y_true.dtype):
        values = ops.cast(y_true, "float32")
    limit = num_classes
    if not isinstance(num_classes, int):
        limit = ops.cast(num_classes, values.dtype)
    valid = ops.logical_and(
        ops.logical_and(values >= 0, values < limit),
        ops.equal(values, ops.floor(values)),
    )
    valid = _checked(values, valid, num_classes)
    return ops.cast(y_true, "int32"), valid


def _expected(num_classes) -> str:
    return (
        f"Invalid labels: expected integer class ids in [0, {num_classes}) "
        f"for num_classes={num_classes}."
    )


_ADVICE = (
    "Use class ids 0 .. num_classes - 1 (or one-hot labels of shape "
    "[B, num_classes]) and build the loss or metric for the classes of the "
    "dataset (its priors / class counts / num_classes)."
)


def _checked(values, valid, num_classes):
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if not tf.executing_eagerly():
            return _graph_assert(tf, values, valid, num_classes)
    elif backend == "jax":
        import jax

        if isinstance(valid, jax.core.Tracer):
            return valid
    mask = ops.convert_to_numpy(valid)
    if not mask.all():
        bad = ops.convert_to_numpy(values)[~mask]
        examples = ", ".join(f"{v:g}" for v in bad[:5])
        raise ValueError(
            f"{_expected(num_classes)} Received: {bad.size} invalid label(s) "
            f"from {bad.min():g} to {bad.max():g} (e.g. {examples}). {_ADVICE}"
        )
    return valid


def _graph_assert(tf, values, valid, num_classes):
    """`valid`, after an assertion that all labels are valid."""
    values = tf.cast(values, tf.float32)
    inf = tf.constant(np.inf, tf.float32)
    if isinstance(num_classes, int):
        expected = [_expected(num_classes)]
    else:  # The class axis is only known when the graph runs.
        expected = [
            "Invalid labels: expected integer class ids in [0, num_classes) "
            "for num_classes =",
            num_classes,
        ]
    data = [
        *expected,
        "Received: invalid labels from",
        tf.reduce_min(tf.where(valid, inf, values)),
        "to",
        tf.reduce_max(tf.where(valid, -inf, values)),
        _ADVICE,
    ]
    check = tf.debugging.Assert(tf.reduce_all(valid), data, summarize=5)
    with tf.control_dependencies([check]):
        return tf.identity(valid)
