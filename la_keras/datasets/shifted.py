"""A balanced test split resampled to a long-tailed class mix (prior shift).

LADE (Hong et al. 2021) and SADE (Zhang et al. 2022) test a long-tail
model under shifted test mixes: the balanced test split is subsampled,
without replacement, so that the class of rank `r` in the training order
(most frequent first) keeps `int(n_max * N**(-r / (C - 1)))` images,
`n_max` the smallest class count of the test split and `N` the imbalance.
"forward" keeps the training order (head classes stay frequent),
"backward" reverses it, "uniform" keeps `n_max` images of every class.

Pure numpy; the same seed gives the same indices on every machine.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = [
    "parse_test_prior",
    "prior_counts",
    "shifted_counts",
    "shifted_indices",
]

_PROFILE = re.compile(r"^(forward|backward)(\d+(\.\d+)?)$")


def parse_test_prior(test_prior: str) -> tuple[str, float]:
    """`"forward50"` -> `("forward", 50.0)`; `"uniform"` -> `("uniform", 1.0)`."""
    if test_prior == "uniform":
        return "uniform", 1.0
    match = _PROFILE.match(str(test_prior))
    if not match or float(match.group(2)) < 1:
        raise ValueError(
            "Invalid value for argument `test_prior`. Expected 'uniform', "
            "'forward<N>' or 'backward<N>' with N >= 1 (e.g. 'forward50'). "
            f"Received: test_prior={test_prior!r}"
        )
    return match.group(1), float(match.group(2))


def shifted_counts(train_counts, n_max: int, test_prior: str) -> np.ndarray:
    """Images kept per class (label order) for `test_prior`.

    Example:

    >>> shifted_counts([50, 200, 100], 100, "forward10").tolist()
    [10, 100, 31]
    """
    direction, imbalance = parse_test_prior(test_prior)
    counts = np.asarray(train_counts)
    c = len(counts)
    if counts.ndim != 1 or c < 2:
        raise ValueError(
            "Invalid value for argument `train_counts`. Expected one count "
            f"per class, at least 2 classes. Received: train_counts={counts!r}"
        )
    rank = np.empty(c, np.int64)
    rank[np.argsort(-counts, kind="stable")] = np.arange(c)
    if direction == "backward":
        rank = c - 1 - rank
    if direction == "uniform":
        return np.full(c, int(n_max), np.int64)
    keep = n_max * np.power(imbalance, -rank / (c - 1))
    return np.floor(keep + 1e-9).astype(np.int64)


def prior_counts(prior, n_max: int) -> np.ndarray:
    """Images kept per class for a class mix given as numbers: the class
    of the largest entry keeps `n_max`, class k `floor(n_max * p_k / max p)`.

    Example:

    >>> prior_counts([0.5, 0.25, 0.25], 100).tolist()
    [100, 50, 50]
    """
    prior = np.asarray(prior, np.float64)
    if prior.ndim != 1 or not np.all(np.isfinite(prior)) or np.any(prior < 0):
        raise ValueError(
            "Invalid value for argument `prior`. Expected one finite, "
            f"non-negative number per class. Received: prior={prior!r}"
        )
    if prior.max() <= 0:
        raise ValueError(
            "Invalid value for argument `prior`. Expected a positive sum. "
            f"Received: prior={prior!r}"
        )
    return np.floor(n_max * prior / prior.max() + 1e-9).astype(np.int64)


def shifted_indices(
    labels, train_counts, test_prior: str, seed: int = 0
) -> np.ndarray:
    """Sorted indices of the test examples kept for `test_prior`.

    Args:
        labels: `[N]` integer labels of the (balanced) test split.
        train_counts: per-class training counts: the training order.
        test_prior: "uniform", "forward<N>" or "backward<N>", or the
            class mix as one number per class (`prior_counts`).
        seed: which examples of each class are kept
            (`numpy.random.default_rng(seed)`, classes in label order).
    """
    labels = np.asarray(labels)
    c = len(np.asarray(train_counts))
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(
            "Invalid value for argument `labels`. Expected 1-D integer "
            f"labels. Received: labels of shape {labels.shape}"
        )
    per_class = np.bincount(labels, minlength=c)
    if len(per_class) != c:
        raise ValueError(
            f"Invalid value for argument `labels`. Expected classes in [0, {c})."
            f" Received: labels up to {labels.max()}"
        )
    n_max = int(per_class.min())
    if isinstance(test_prior, str):
        keep = shifted_counts(train_counts, n_max, test_prior)
    else:
        keep = prior_counts(test_prior, n_max)
        if len(keep) != c:
            raise ValueError(
                f"Invalid value for argument `test_prior`: {len(keep)} "
                f"numbers for {c} classes. Pass one per class."
            )
    rng = np.random.default_rng(seed)
    chosen = [
        rng.permutation(np.flatnonzero(labels == k))[: keep[k]]
        for k in range(c)
    ]
    return np.sort(np.concatenate(chosen))
