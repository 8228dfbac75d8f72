"""Losses by name, built from the training set's class counts.

`launch.train --loss=NAME` and `launch.reproduce` build their loss here, so a
new loss family becomes selectable by adding one entry to `_BUILDERS`.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from la_keras import priors as priors_lib
from la_keras.losses.balanced_softmax import BalancedSoftmaxLoss
from la_keras.losses.class_balanced import ClassBalancedLoss
from la_keras.losses.class_balanced import FocalLoss
from la_keras.losses.equalized import EqualizedLoss
from la_keras.losses.ldam import LDAMLoss
from la_keras.losses.logit_adjusted import LogitAdjustedLoss


def _crossentropy(class_counts, **kwargs):
    del class_counts
    return keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, **kwargs
    )


def _logit_adjusted(class_counts, tau=1.0, **kwargs):
    return LogitAdjustedLoss(class_counts, tau=tau, **kwargs)


def _ldam(class_counts, max_m=0.5, s=30.0, **kwargs):
    return LDAMLoss(class_counts, max_m=max_m, s=s, **kwargs)


def _ldam_drw(
    class_counts,
    max_m=0.5,
    s=30.0,
    drw_start_epoch=160,
    drw_beta=0.9999,
    **kwargs,
):
    # DRW only takes effect if the training loop calls
    # `loss.on_epoch_begin(epoch)` at the start of every epoch.
    return LDAMLoss(
        class_counts,
        max_m=max_m,
        s=s,
        drw_start_epoch=drw_start_epoch,
        drw_beta=drw_beta,
        **kwargs,
    )


def _balanced_softmax(class_counts, **kwargs):
    return BalancedSoftmaxLoss(class_counts, **kwargs)


def _equalized(class_counts, gamma=1.0, lambda_=None, seed=None, **kwargs):
    return EqualizedLoss(
        class_counts, gamma=gamma, lambda_=lambda_, seed=seed, **kwargs
    )


def _class_balanced(class_counts, beta=0.9999, **kwargs):
    return ClassBalancedLoss(
        class_counts, beta=beta, loss_type="softmax", **kwargs
    )


def _class_balanced_focal(class_counts, beta=0.9999, gamma=2.0, **kwargs):
    return ClassBalancedLoss(
        class_counts, beta=beta, loss_type="focal", gamma=gamma, **kwargs
    )


def _focal(class_counts, gamma=2.0, **kwargs):
    del class_counts
    return FocalLoss(gamma=gamma, **kwargs)


# name -> (builder(class_counts, **kwargs), one-line description)
_BUILDERS: dict[str, tuple[Callable, str]] = {
    "crossentropy": (_crossentropy, "plain softmax cross-entropy (ERM)"),
    "logit_adjusted": (
        _logit_adjusted,
        "logit-adjusted cross-entropy, Menon et al. 2021 (takes tau)",
    ),
    "ldam": (
        _ldam,
        "LDAM margin loss, Cao et al. 2019 (takes max_m, s)",
    ),
    "ldam_drw": (
        _ldam_drw,
        "LDAM with deferred re-weighting, Cao et al. 2019 (takes max_m, s, "
        "drw_start_epoch, drw_beta); the loop must call "
        "loss.on_epoch_begin(epoch) every epoch",
    ),
    "balanced_softmax": (
        _balanced_softmax,
        "balanced softmax, Ren et al. 2020 (= logit_adjusted with tau=1)",
    ),
    "equalized": (
        _equalized,
        "softmax equalization loss, Tan et al. 2020 (takes gamma, lambda_, "
        "seed)",
    ),
    "class_balanced": (
        _class_balanced,
        "class-balanced softmax cross-entropy, Cui et al. 2019 (takes beta)",
    ),
    "class_balanced_focal": (
        _class_balanced_focal,
        "class-balanced softmax focal loss, Cui et al. 2019 (takes beta, "
        "gamma)",
    ),
    "focal": (_focal, "softmax focal loss, Lin et al. 2017 (takes gamma)"),
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
