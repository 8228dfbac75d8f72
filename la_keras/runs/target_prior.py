"""`--target_prior`: the class mix a SavedModel serves by default.

"uniform" (the balanced rule, as without the flag), "train" (the run's
training prior) or the path of a file of one number per class: a JSON list,
or numbers separated by whitespace (one per line, say). The numbers are
class probabilities or counts, normalized to sum to 1.
"""

from __future__ import annotations

import json
import math
import os

import numpy as np

from la_keras.runs.errors import RunError


def _numbers(text: str, flag: str) -> list[float]:
    try:
        values = json.loads(text)
    except ValueError:
        values = text.split()
    if not isinstance(values, list):
        values = [values]
    numbers = []
    for value in values:
        try:
            if isinstance(value, bool):
                raise ValueError(value)
            numbers.append(float(value))
        except (TypeError, ValueError):
            raise RunError(
                f"{flag}: {value!r} is not a number; expected one class "
                "probability or count per class."
            ) from None
    return numbers


def read_target_prior(
    value: str, train_prior, flag: str = "--target_prior"
) -> np.ndarray | None:
    """The prior `--target_prior=value` names, normalized; None for uniform.

    Args:
        value: "uniform", "train" or the path of a file of numbers.
        train_prior: the run's training prior, `[num_classes]`.
        flag: the flag named in the errors.

    Returns:
        float64 `[num_classes]` summing to 1, or None for "uniform".

    Raises:
        RunError: one line: a missing file, a non-number, a count of
            numbers other than the number of classes, a negative or
            non-finite entry, or a zero sum.

    Example:

    >>> read_target_prior("train", [0.75, 0.25]).tolist()
    [0.75, 0.25]
    """
    if value == "uniform":
        return None
    if value == "train":
        return np.asarray(train_prior, np.float64) / np.sum(train_prior)
    flag = f"{flag}={value}"
    if not os.path.isfile(value):
        raise RunError(
            f"{flag}: no such file; pass uniform, train or a file of one "
            "number per class."
        )
    with open(value) as f:
        numbers = _numbers(f.read(), flag)
    num_classes = len(train_prior)
    if len(numbers) != num_classes:
        raise RunError(
            f"{flag}: {len(numbers)} numbers, but the run has {num_classes} "
            "classes; pass one per class."
        )
    for number in numbers:
        if not math.isfinite(number) or number < 0:
            raise RunError(
                f"{flag}: {number:g} is not a finite number >= 0 (class "
                "probabilities or counts)."
            )
    if sum(numbers) <= 0:
        raise RunError(
            f"{flag}: the numbers sum to 0; at least one class needs a "
            "positive prior."
        )
    values = np.asarray(numbers, np.float64)
    return values / values.sum()
