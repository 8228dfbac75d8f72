"""Class priors: estimate, validate, read and write them.

A prior is a 1-D float vector of class probabilities that sums to one. Every
entry point of la_keras that takes `priors` accepts either probabilities or
raw class counts (a list, a numpy array or a tensor) and normalizes them with
`normalize`, which is also where bad priors are refused.

The text format of `load_txt` / `save_txt` is the official release's
`<dataset>_base_probs.txt`: one float per line, readable by `np.loadtxt`.
`load_txt` reads probabilities only: it refuses a file that is not a
probability vector (unparsable, non-finite, negative, or a sum more than
1e-3 from 1), so that a damaged file is never renormalized into other priors.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = [
    "normalize",
    "to_numpy",
    "from_counts",
    "from_labels",
    "from_dataset",
    "load_txt",
    "save_txt",
    "check_ratio",
    "exp_profile_counts",
    "step_profile_counts",
]

# How far from 1 the probabilities of a prior file may sum (`load_txt`).
PROBABILITY_SUM_TOLERANCE = 1e-3


def to_numpy(values: Any) -> np.ndarray:
    """A list, numpy array or (eager) tensor as a numpy array."""
    if hasattr(values, "numpy"):
        values = values.numpy()
    return np.asarray(values)


def normalize(priors: Any, name: str = "priors") -> np.ndarray:
    """Validates class priors or counts and returns them as float64 summing to 1.

    Args:
        priors: 1-D class probabilities or non-negative class counts: a list,
            a numpy array or a tensor.
        name: argument name used in error messages.

    Returns:
        A float64 numpy array of shape `[num_classes]` that sums to 1.

    Raises:
        ValueError: if `priors` is not 1-D, is empty, holds a negative, NaN
            or infinite value, or sums to zero.
    """
    try:
        values = to_numpy(priors).astype(np.float64)
    except (TypeError, ValueError) as e:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a 1-D sequence of "
            f"class probabilities or counts. Received: {name}={priors!r}"
        ) from e
    if values.ndim != 1:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a 1-D vector with "
            f"one entry per class, got shape {values.shape}. Received: "
            f"{name}={priors!r}"
        )
    if values.size == 0:
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected at least one "
            f"class. Received: {name}={priors!r}"
        )
    if not np.all(np.isfinite(values)):
        bad = np.flatnonzero(~np.isfinite(values)).tolist()
        raise ValueError(
            f"Invalid value for argument `{name}`: NaN or inf at class "
            f"indices {bad}. Priors must be finite probabilities or counts."
        )
    if np.any(values < 0):
        bad = np.flatnonzero(values < 0).tolist()
        raise ValueError(
            f"Invalid value for argument `{name}`: negative values at class "
            f"indices {bad}. Priors must be non-negative probabilities or "
            "counts."
        )
    total = values.sum()
    if total <= 0:
        raise ValueError(
            f"Invalid value for argument `{name}`: all entries are zero. Pass "
            "class probabilities or counts with at least one positive entry."
        )
    return values / total


def from_counts(counts: Any) -> np.ndarray:
    """Returns priors from per-class counts.

    Example:

    >>> la_keras.priors.from_counts([5000, 2997, 1796])
    array([0.5..., 0.3..., 0.1...])
    """
    return normalize(counts, name="counts")


def from_labels(labels: Any, num_classes: int | None = None) -> np.ndarray:
    """Returns priors from integer labels (numpy array, list or tensor).

    Args:
        labels: integer class ids, any shape.
        num_classes: number of classes. Defaults to `max(labels) + 1`; pass it
            when the rarest classes may be missing from `labels`.
    """
    values = to_numpy(labels).reshape(-1)
    if values.size == 0:
        raise ValueError(
            "Invalid value for argument `labels`: it is empty. Pass at least "
            "one label."
        )
    if not np.issubdtype(values.dtype, np.integer):
        if not np.all(np.equal(np.mod(values, 1), 0)):
            raise ValueError(
                "Invalid value for argument `labels`. Expected integer class "
                f"ids. Received dtype {values.dtype}."
            )
        values = values.astype(np.int64)
    if values.min() < 0:
        raise ValueError(
            "Invalid value for argument `labels`: negative class id "
            f"{int(values.min())}."
        )
    if num_classes is None:
        num_classes = int(values.max()) + 1
    elif values.max() >= num_classes:
        raise ValueError(
            f"Invalid value for argument `labels`: class id {int(values.max())} "
            f"is out of range for num_classes={num_classes}."
        )
    return from_counts(np.bincount(values, minlength=num_classes))


def count_dataset(dataset: Any, num_classes: int) -> np.ndarray:
    """Counts labels of a `tf.data.Dataset` in one streaming pass.

    The dataset yields `(features, label)` pairs, `{"label": ...}` dicts or
    bare labels; batched or not. Labels are integer class ids. Only a
    `num_classes`-sized counter is kept in memory.
    """
    import tensorflow as tf

    def _label(element):
        if isinstance(element, dict):
            if "label" not in element:
                raise ValueError(
                    "Invalid dataset: dict elements must have a `label` key. "
                    f"Found keys: {sorted(element)}"
                )
            return element["label"]
        if isinstance(element, (tuple, list)):
            return element[1]
        return element

    def _reduce(counts, element):
        label = tf.reshape(tf.cast(_label(element), tf.int32), [-1])
        tf.debugging.assert_less(
            label,
            num_classes,
            message=f"label out of range for num_classes={num_classes}",
        )
        tf.debugging.assert_non_negative(label, message="negative label")
        return counts + tf.math.bincount(
            label, minlength=num_classes, maxlength=num_classes, dtype=tf.int64
        )

    counts = dataset.reduce(tf.zeros([num_classes], tf.int64), _reduce)
    return counts.numpy()


def from_dataset(dataset: Any, num_classes: int) -> np.ndarray:
    """Returns priors from a `tf.data.Dataset` in one streaming pass.

    See `count_dataset` for the accepted element structures.
    """
    return from_counts(count_dataset(dataset, num_classes))


def load_txt(path: str | os.PathLike) -> np.ndarray:
    """Reads the official `<dataset>_base_probs.txt` format and validates it.

    The file must hold one probability per line: finite, non-negative and
    summing to 1 within `PROBABILITY_SUM_TOLERANCE` (the official files and
    `save_txt` write 16 or more significant digits). A file cut mid-number
    or mid-line fails this instead of being renormalized into other priors.

    Raises:
        FileNotFoundError: for a missing file.
        ValueError: naming the file, when it does not parse as one number a
            line or is not a probability vector.
    """
    import tensorflow as tf

    path = os.fspath(path)
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"Prior file not found: {path}. Write one with "
            "`la_keras.priors.save_txt(path, priors)`."
        )
    with tf.io.gfile.GFile(path, "r") as f:
        lines = [(n, line.strip()) for n, line in enumerate(f, start=1)]
    values = []
    for number, line in lines:
        if not line:
            continue
        try:
            values.append(float(line))
        except ValueError:
            raise ValueError(
                f"Invalid prior file {path}: line {number} is not a number: "
                f"{line!r}. Expected one probability per line."
            ) from None
    values = np.asarray(values, dtype=np.float64)
    problem = _probability_problem(values)
    if problem:
        raise ValueError(
            f"Invalid prior file {path}: {problem}. Expected one probability "
            "per line, summing to 1; the file may be damaged (cut short) or "
            "hold counts. Write priors with `la_keras.priors.save_txt`."
        )
    return normalize(values, name=f"priors in {path}")


def _probability_problem(values: np.ndarray) -> str | None:
    """What keeps `values` from being a probability vector, or None."""
    if values.size == 0:
        return "it holds no number"
    not_finite = np.flatnonzero(~np.isfinite(values)).tolist()
    if not_finite:
        return f"NaN or inf at classes {not_finite}"
    negative = np.flatnonzero(values < 0).tolist()
    if negative:
        return f"negative values at classes {negative}"
    total = float(values.sum())
    if abs(total - 1.0) > PROBABILITY_SUM_TOLERANCE:
        return (
            f"its {values.size} values sum to {total!r}, not 1 (tolerance "
            f"{PROBABILITY_SUM_TOLERANCE})"
        )
    return None


def save_txt(path: str | os.PathLike, priors: Any) -> None:
    """Writes priors in the official format: one float per line."""
    import tensorflow as tf

    values = normalize(priors)
    with tf.io.gfile.GFile(os.fspath(path), "w") as f:
        np.savetxt(f, values)


def exp_profile_counts(n_max: int, num_classes: int, ratio: float) -> list[int]:
    """Per-class counts of the EXP profile: `floor(n_max * ratio^(-i/(C-1)))`.

    With `n_max=5000, num_classes=10, ratio=100` this gives the official
    CIFAR-10-LT counts (12,406 images); with `500, 100, 100` CIFAR-100-LT
    (10,847 images).
    """
    _check_profile_args(n_max, num_classes, ratio)
    if num_classes == 1:
        return [int(n_max)]
    return [
        int(np.floor(n_max * ratio ** (-i / (num_classes - 1))))
        for i in range(num_classes)
    ]


def step_profile_counts(
    n_max: int, num_classes: int, ratio: float, minority_fraction: float = 0.5
) -> list[int]:
    """Per-class counts of the STEP profile (Cao et al. 2019).

    The first `(1 - minority_fraction) * C` classes keep `n_max` images, the
    rest keep `floor(n_max / ratio)`.
    """
    _check_profile_args(n_max, num_classes, ratio)
    if not 0.0 <= minority_fraction <= 1.0:
        raise ValueError(
            "Invalid value for argument `minority_fraction`. Expected a value "
            f"in [0, 1]. Received: minority_fraction={minority_fraction}"
        )
    num_major = num_classes - int(round(minority_fraction * num_classes))
    n_min = int(np.floor(n_max / ratio))
    return [n_max] * num_major + [n_min] * (num_classes - num_major)


def check_ratio(ratio: Any) -> float:
    """The imbalance ratio `n_max / n_min` as a float; ValueError unless >= 1."""
    if (
        not isinstance(ratio, numbers.Real)
        or isinstance(ratio, bool)
        or not np.isfinite(ratio)
        or ratio < 1
    ):
        raise ValueError(
            "Invalid value for argument `ratio`. Expected the imbalance ratio "
            "n_max / n_min as a number >= 1 (1 is balanced, 100 is the "
            f"paper's). Received: ratio={ratio!r}"
        )
    return float(ratio)


def _check_profile_args(n_max: int, num_classes: int, ratio: float) -> None:
    check_ratio(ratio)
    if num_classes < 1 or n_max < 1:
        raise ValueError(
            "Invalid profile: `num_classes` and `n_max` must be >= 1. "
            f"Received: num_classes={num_classes}, n_max={n_max}"
        )


def as_float_list(priors: Sequence[float] | np.ndarray) -> list[float]:
    """Priors as plain Python floats, for `get_config`."""
    return [float(v) for v in np.asarray(priors, dtype=np.float64).reshape(-1)]
