"""Seeds of a training's random streams, from the run seed (numpy only).

Every random draw of a training epoch (its order, its class-balanced draws,
its augmentation) is a function of `(seed, epoch)` passed explicitly to the
pipeline that makes the epoch: no process-wide random state is set or read
per epoch, so an epoch can be built on any thread, ahead of time, and a run
resumed in a new process sees the batches of an uninterrupted one.
"""

from __future__ import annotations

import numpy as np


def epoch_seed(seed: int, epoch: int, *streams: int) -> int:
    """The seed of epoch `epoch`'s input pipeline, from the run seed.

    Args:
        seed: the run seed, an integer >= 0.
        epoch: the epoch, from 0.
        *streams: further integers >= 0 that pick one of several
            independent streams of the same epoch (for example one per
            input pipeline); none gives the epoch's main stream.

    Returns:
        An integer in `[0, 2**31 - 1)`, a valid seed of numpy, JAX and
        TensorFlow ops.

    Example:

    >>> epoch_seed(0, 1) == epoch_seed(0, 1)
    True
    >>> epoch_seed(0, 1) != epoch_seed(0, 2)
    True
    """
    entropy = [int(seed), int(epoch), *(int(s) for s in streams)]
    mixed = np.random.SeedSequence(entropy).generate_state(1)
    return int(mixed[0] % (2**31 - 1))
