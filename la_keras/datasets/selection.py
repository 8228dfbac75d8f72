"""Which examples a long-tailed dataset keeps, and which go to the holdout.

Pure numpy over the labels of a source split, read in its canonical order
(for TFDS: shard by shard, record by record, as written by `tfds build`).
The rule, the same on every machine and every run:

1. Order each class's examples: with `seed=0`, by their position in the
   source split; with any other seed, by a permutation of that class's
   positions drawn from `numpy.random.default_rng(seed)`, classes in label
   order.
2. The profile keeps the first `n_i` examples of class `i` in that order.
3. A holdout of `holdout_fraction` takes the last
   `round(holdout_fraction * n_i)` kept examples of each class (at least one,
   and at least one left for training, whenever `n_i >= 2`).

Kept examples stream in their source order, whatever the seed.
"""

from __future__ import annotations

import math

import numpy as np

from la_keras import priors as priors_lib

PROFILES = ("exp", "step")
# `load`'s defaults: the long-tail profile of the datasets made long-tailed.
DEFAULT_RATIO = 100.0
DEFAULT_PROFILE = "exp"


def check_holdout_fraction(holdout_fraction: float) -> float:
    """Validates `holdout_fraction` in `[0, 1)` and returns it as a float."""
    valid = isinstance(holdout_fraction, (int, float)) and not isinstance(
        holdout_fraction, bool
    )
    if not valid or not 0.0 <= holdout_fraction < 1.0:
        raise ValueError(
            "Invalid value for argument `holdout_fraction`. Expected the "
            "fraction of each class's training images set aside for choosing "
            "tau, a number in [0, 1) (0 disables the holdout, 0.1 is typical). "
            f"Received: holdout_fraction={holdout_fraction!r}"
        )
    return float(holdout_fraction)


def profile_counts(
    available: np.ndarray, ratio: float, profile: str
) -> np.ndarray:
    """Per-class counts of a long-tail profile over a source split.

    The head class keeps `n_max = min(available)` images, so that every class
    can supply its share; for CIFAR-10 that is 5,000 and for CIFAR-100 500,
    as in the official release.

    Args:
        available: per-class counts of the source split.
        ratio: imbalance ratio `n_max / n_min`, >= 1.
        profile: `"exp"` (`floor(n_max * ratio^(-i/(C-1)))`) or `"step"`
            (half the classes keep `n_max`, the rest `floor(n_max / ratio)`).

    Returns:
        int64 per-class counts.

    Raises:
        ValueError: for an unknown profile, a ratio below 1, a source class
            without images, or a profile that leaves a class empty.
    """
    available = np.asarray(available, dtype=np.int64)
    if profile not in PROFILES:
        raise ValueError(
            "Invalid value for argument `profile`. Expected one of "
            f"{PROFILES}. Received: profile={profile!r}"
        )
    empty = np.flatnonzero(available == 0).tolist()
    if empty:
        raise ValueError(
            f"Cannot make the dataset long-tailed: classes {empty} have no "
            "training images in the source split."
        )
    n_max = int(available.min())
    num_classes = len(available)
    if profile == "exp":
        counts = priors_lib.exp_profile_counts(n_max, num_classes, ratio)
    else:
        counts = priors_lib.step_profile_counts(n_max, num_classes, ratio)
    counts = np.asarray(counts, dtype=np.int64)
    zero = np.flatnonzero(counts == 0).tolist()
    if zero:
        raise ValueError(
            f"Invalid value for argument `ratio`: the {profile!r} profile with "
            f"ratio={ratio} and n_max={n_max} leaves classes {zero} with zero "
            f"images. Use a ratio of at most {n_max}. Received: ratio={ratio}"
        )
    return counts


def class_order(labels: np.ndarray, num_classes: int, seed: int) -> list:
    """Per-class positions into `labels`, ordered by the documented rule."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"Labels out of range for num_classes={num_classes}: found "
            f"[{labels.min()}, {labels.max()}]."
        )
    rng = np.random.default_rng(seed) if seed else None
    order = []
    for c in range(num_classes):
        positions = np.flatnonzero(labels == c)
        if rng is not None:
            positions = rng.permutation(positions)
        order.append(positions)
    return order


def holdout_sizes(counts: np.ndarray, holdout_fraction: float) -> np.ndarray:
    """Per-class holdout sizes for `holdout_fraction` of `counts`."""
    counts = np.asarray(counts, dtype=np.int64)
    if holdout_fraction == 0.0:
        return np.zeros_like(counts)
    sizes = np.array(
        [math.floor(holdout_fraction * n + 0.5) for n in counts], np.int64
    )
    sizes = np.clip(sizes, 1, np.maximum(counts - 1, 0))
    return np.where(counts >= 2, sizes, 0)


def select(
    labels: np.ndarray,
    num_classes: int,
    counts: np.ndarray | None,
    holdout_fraction: float = 0.0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Positions of the kept training examples and of the holdout.

    Args:
        labels: labels of the source split, in its canonical order.
        num_classes: number of classes.
        counts: per-class counts to keep, or None to keep every example.
        holdout_fraction: fraction of each class's kept examples moved to the
            holdout.
        seed: 0 keeps each class's first examples; other seeds a seeded
            permutation of them.

    Returns:
        `(train_positions, holdout_positions)`: sorted int64 arrays.
    """
    order = class_order(labels, num_classes, seed)
    if counts is None:
        counts = np.array([len(p) for p in order], np.int64)
    sizes = holdout_sizes(counts, holdout_fraction)
    train, holdout = [], []
    for positions, n, k in zip(order, counts, sizes, strict=True):
        if n > len(positions):
            raise ValueError(
                f"Cannot keep {n} images of a class that has only "
                f"{len(positions)}."
            )
        kept = positions[:n]
        train.append(kept[: n - k])
        holdout.append(kept[n - k :])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(holdout))
