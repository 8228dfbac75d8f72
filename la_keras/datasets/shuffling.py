"""How a training epoch is shuffled and seeded.

The shuffle buffer of each dataset (`default_shuffle_buffer`), and the
seeds of an epoch's random draws: each is a function of the run seed, the
epoch and the input pipeline (`epoch_seed`), passed to the ops that draw
(`tf.data.Dataset.shuffle(seed=...)`, stateless augmentation ops through
`with_seeds`). Nothing here sets TensorFlow's global random state, so an
epoch's pipeline can be built on any thread while another trains.
"""

from __future__ import annotations

import tensorflow as tf

from la_keras import seeds
from la_keras.datasets import folder
from la_keras.datasets import official
from la_keras.datasets.arguments import is_int_at_least

# Decoded ImageNet-size images are too big to shuffle the whole split in
# memory; their pipeline shuffles within a buffer of this many images (TFDS
# writes its shards in a hashed, class-mixed order).
IMAGENET_SHUFFLE_BUFFER = 4096


def default_shuffle_buffer(
    name: str, preprocessing: str, cached: bool | None = None
) -> int | None:
    """The training shuffle buffer of a dataset; None is the whole split.

    * `cifar10-lt`, `cifar100-lt` (the official TFRecords):
      `official.SHUFFLE_BUFFER` (10,000) records, as the official release.
    * Other CIFAR-recipe sets (TFDS `*_lt`, `tfds:<name>` with small images,
      `test`): the whole split. Their decoded images are cached in memory
      anyway, and the long-tail selection streams the kept images in source
      order, so that with `seed=0` the few images of a tail class are the
      first of that class in the file, near the start of the split: a buffer
      smaller than the split would not mix them uniformly into the epoch.
    * ImageNet-recipe sets: `IMAGENET_SHUFFLE_BUFFER` (4,096) images.
    * Folder sets: the whole split when it is cached in memory (`cached`),
      else `IMAGENET_SHUFFLE_BUFFER` over files that come in an order with
      the classes interleaved (`folder.Folder.split`).
    """
    if name in official.NUM_CLASSES:
        return official.SHUFFLE_BUFFER
    if name.startswith(folder.PREFIX):
        return None if cached else IMAGENET_SHUFFLE_BUFFER
    if preprocessing == "cifar":
        return None
    return IMAGENET_SHUFFLE_BUFFER


def check_shuffle_buffer(shuffle_buffer) -> int | None:
    """Validates `shuffle_buffer`: None or an integer >= 1."""
    if shuffle_buffer is None:
        return None
    if not is_int_at_least(shuffle_buffer, 1):
        raise ValueError(
            "Invalid value for argument `shuffle_buffer`. Expected None (the "
            "dataset's default) or the number of examples the training "
            "shuffle holds, an integer >= 1 (1 does not shuffle). Received: "
            f"shuffle_buffer={shuffle_buffer!r}"
        )
    return int(shuffle_buffer)


def epoch_seed(seed: int, epoch, pipeline: int = 0) -> int:
    """The seed of input pipeline `pipeline`'s training `epoch`.

    Pipeline 0 takes the epoch's main stream (`la_keras.seeds.epoch_seed`),
    the others their own.

    Raises:
        ValueError: `epoch` is not an integer >= 0.
    """
    if not is_int_at_least(epoch, 0):
        raise ValueError(
            "Invalid value for argument `epoch`. Expected the training epoch, "
            "an integer >= 0: a training epoch's order and augmentation are "
            f"drawn from (seed, epoch). Received: epoch={epoch!r}"
        )
    streams = (pipeline,) if pipeline else ()
    return seeds.epoch_seed(seed, int(epoch), *streams)


def with_seeds(dataset, seed: int, fn):
    """`dataset` with each element zipped with a stateless seed `[2]`, and
    `fn(*element, draw_seed)` to map it with.

    The seeds come from a `tf.data.Dataset.random(seed)` stream: the first
    pass over the dataset draws the same seeds in any process; a later pass
    (a `repeat()`) draws new ones.
    """
    draws = tf.data.Dataset.random(seed, rerandomize_each_iteration=True)
    zipped = tf.data.Dataset.zip(dataset, draws.batch(2, drop_remainder=True))

    def seeded(element, draw_seed):
        return fn(*element, draw_seed)

    return zipped, seeded
