"""How a training epoch draws its examples: `SAMPLERS` and their orders.

* `"shuffle"` (the default): every example once per epoch, in a new random
  order; each pipeline shuffles on its own (`tf.data` shuffle buffer,
  `jax.random.permutation`), so it has no order function here.
* `"class_balanced"`: each draw picks a class uniformly among the classes
  present in the split, then an example of that class uniformly, with
  replacement: the classifier re-training stage (cRT) of decoupled training
  (Kang et al. 2020). `class_balanced_order` is its one definition, in
  numpy, used by the TensorFlow pipeline (`DatasetBuilder`) and the JAX one
  (`la_keras.training.jax_data.DeviceDataset`), so that both draw the same
  examples for the same `(seed, epoch)`.

Numpy only (no TensorFlow, no JAX), so that either backend imports it.
"""

from __future__ import annotations

import numpy as np

from la_keras.datasets.arguments import is_int_at_least
from la_keras.seeds import epoch_seed

SAMPLERS = ("shuffle", "class_balanced")


def check_sampler(sampler) -> str:
    """Validates `sampler`: one of `SAMPLERS`; returns it."""
    if not isinstance(sampler, str) or sampler not in SAMPLERS:
        raise ValueError(
            "Invalid value for argument `sampler`. Expected one of "
            f"{', '.join(repr(s) for s in SAMPLERS)}: 'shuffle' takes every "
            "example once per epoch in a random order, 'class_balanced' "
            "draws each class equally often. Received: "
            f"sampler={sampler!r}"
        )
    return sampler


def class_balanced_order(labels, seed: int, epoch: int, num_draws=None):
    """The example indices of one class-balanced training epoch.

    Each of `num_draws` draws picks a class uniformly among the classes
    present in `labels`, then one of that class's examples uniformly, with
    replacement: a class of 50 examples is drawn as often as one of 5,000,
    its examples repeated, and the head's examples are subsampled. The draws
    are a function of `(seed, epoch)` only, through `epoch_seed` (the
    seeding of every epoch's input pipeline), so that a run resumed in a new
    process draws the epochs of an uninterrupted one.

    Args:
        labels: int class of each example `[N]`, in the order of the split
            that the indices address.
        seed: the run seed.
        epoch: the epoch number, from 0.
        num_draws: draws of the epoch; defaults to `N`, so that an epoch
            keeps the length (and the steps) of a shuffled one.

    Returns:
        int64 indices into `labels`, `[num_draws]`.

    Example:

    >>> order = class_balanced_order([0, 0, 0, 0, 1], seed=0, epoch=0)
    >>> order.shape
    (5,)
    """
    labels = np.asarray(labels)
    if (
        labels.ndim != 1
        or labels.size == 0
        or not np.issubdtype(labels.dtype, np.integer)
    ):
        raise ValueError(
            "Invalid value for argument `labels`. Expected a non-empty 1-D "
            "array of integer class ids. Received: labels with shape "
            f"{labels.shape} and dtype {labels.dtype}"
        )
    if num_draws is None:
        num_draws = labels.size
    if not is_int_at_least(num_draws, 0):
        raise ValueError(
            "Invalid value for argument `num_draws`. Expected None (one per "
            "example) or an integer >= 0. Received: "
            f"num_draws={num_draws!r}"
        )
    _, inverse, counts = np.unique(
        labels, return_inverse=True, return_counts=True
    )
    # The examples grouped by class; class k's are
    # by_class[starts[k] : starts[k] + counts[k]].
    by_class = np.argsort(inverse.reshape(-1), kind="stable")
    starts = np.cumsum(counts) - counts
    rng = np.random.default_rng(epoch_seed(seed, epoch))
    classes = rng.integers(0, len(counts), int(num_draws))
    within = rng.integers(0, counts[classes])
    return by_class[starts[classes] + within].astype(np.int64)
