"""Losses by name, built from the training set's class counts.

`launch.train --loss=NAME` and `launch.reproduce` build their loss here, so a
new loss family becomes selectable by adding one entry to `_BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from la_keras import priors as priors_lib
from la_keras.losses.logit_adjusted import LogitAdjustedLoss


def _crossentropy(class_counts, **kwargs):
    del class_counts
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, **kwargs)


def _logit_adjusted(class_counts, tau=1.0, **kwargs):
    return LogitAdjustedLoss(class_counts, tau=tau, **kwargs)


# name -> (builder(class_counts, **kwargs), one-line description)
_BUILDERS: dict[str, tuple[Callable, str]] = {
    "crossentropy": (_crossentropy, "plain softmax cross-entropy (ERM)"),
    "logit_adjusted": (
        _logit_adjusted,
        "logit-adjusted cross-entropy, Menon et al. 2021 (takes tau)",
    ),
}


def names() -> list[str]:
    """Names accepted by `build`."""
    return sorted(_BUILDERS)


def describe() -> dict[str, str]:
    """Name -> one-line description, for `--help` texts."""
    return {name: _BUILDERS[name][1] for name in names()}


def register(name: str, builder: Callable, description: str) -> None:
    """Adds a loss builder `builder(class_counts, **kwargs) -> keras Loss`."""
    if name in _BUILDERS:
        raise ValueError(f"A loss named {name!r} is already registered.")
    _BUILDERS[name] = (builder, description)


def build(name: str, class_counts, **kwargs) -> keras.losses.Loss:
    """Builds the loss `name` for a training set with `class_counts`.

    Args:
        name: one of `names()`.
        class_counts: per-class training counts (or priors); validated with
            `la_keras.priors.normalize`.
        **kwargs: hyperparameters of that loss (e.g. `tau`).

    Raises:
        ValueError: for an unknown name, listing the known ones.
    """
    if name not in _BUILDERS:
        raise ValueError(
            f"Unknown loss {name!r}. Known losses: {', '.join(names())}."
        )
    counts = np.asarray(class_counts, dtype=np.float64)
    priors_lib.normalize(counts, name="class_counts")
    return _BUILDERS[name][0](counts, **kwargs)
