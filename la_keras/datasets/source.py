"""`Source`: the raw pieces of one dataset, before profiles and holdouts.

Each kind of dataset (TFDS, the official TFRecords, the synthetic `test`
set) describes itself as a `Source`; `load` turns a `Source` into the
long-tailed training split, its holdout and the test split.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Source:
    """The raw pieces of a dataset.

    Args:
        num_classes: number of classes.
        class_names: one name per class.
        preprocessing: `"cifar"` or `"imagenet"`.
        image_shape: model input shape after preprocessing.
        train_labels: returns the labels of the whole source train split, in
            its canonical order.
        read_train: given sorted positions into the train split (or None
            for all), returns a dataset of `(uint8 image, int64 label)` of
            those examples in canonical order.
        other_splits: `"test"` and, when the dataset has its own holdout,
            `"holdout"`, each mapped to a function returning its dataset.
        other_sizes: the number of examples of each of `other_splits`.
        other_labels: the labels of each of `other_splits`, in the order
            of its dataset; `load` checks those of the split it returns.
        long_tail: whether `load` applies the long-tail profile to the train
            split; False for datasets that are long-tailed already.
        priors: fixed priors for the whole train split (the official
            `base_probs` files), or None to compute them from the counts.
        resize: `DatasetInfo.resize` (a prepared file of a resized folder).
        checks: `DatasetInfo` keywords of `split_checks.py` (test counts,
            test images identical to training ones), where they are known
            without reading the data again (a prepared file); else empty.
    """

    num_classes: int
    class_names: list
    preprocessing: str
    image_shape: tuple
    train_labels: Callable[[], np.ndarray]
    read_train: Callable[[np.ndarray | None], tf.data.Dataset]
    other_splits: dict
    other_sizes: dict
    other_labels: dict
    long_tail: bool = True
    priors: np.ndarray | None = None
    resize: tuple | None = None
    checks: dict = dataclasses.field(default_factory=dict)


def keep_positions(dataset, positions):
    """Keeps the elements of `dataset` at the sorted `positions`."""
    positions = np.asarray(positions, dtype=np.int64)
    size = int(positions.max()) + 1 if positions.size else 0
    mask = np.zeros([size], dtype=bool)
    mask[positions] = True
    mask = tf.constant(mask)
    dataset = dataset.take(size).enumerate()
    dataset = dataset.filter(lambda i, _: mask[i])
    return dataset.map(lambda _, element: element)
