"""`test`: a tiny synthetic long-tailed dataset that needs no files.

Ten classes of 32x32x3 uint8 images; the train split follows the EXP profile
with `n_max=10, ratio=5` (46 images), the test split holds 2 images a class.
Images are drawn once from `numpy.random.default_rng(0)` (train) and
`default_rng(1)` (test): uniform noise in [0, 56) plus `20 * label`, so a
model can tell the classes apart by brightness. It is the smoke dataset of
`launch.train --dataset=test`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from la_keras import priors as priors_lib
from la_keras.datasets import source as source_lib

NUM_CLASSES = 10
IMAGE_SHAPE = (32, 32, 3)
TRAIN_COUNTS = tuple(priors_lib.exp_profile_counts(10, NUM_CLASSES, 5))
TEST_PER_CLASS = 2


def make_arrays(counts, seed):
    """Deterministic images and labels, `counts[i]` of class `i`, shuffled."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(NUM_CLASSES), counts)
    labels = labels[rng.permutation(len(labels))]
    noise = rng.integers(0, 56, size=(len(labels), *IMAGE_SHAPE))
    images = (noise + 20 * labels[:, None, None, None]).astype(np.uint8)
    return images, labels.astype(np.int64)


def make_source() -> source_lib.Source:
    train_images, train_labels = make_arrays(TRAIN_COUNTS, seed=0)
    test_images, test_labels = make_arrays([TEST_PER_CLASS] * NUM_CLASSES, 1)

    def read_train(positions):
        if positions is None:
            positions = np.arange(len(train_labels))
        return tf.data.Dataset.from_tensor_slices(
            (train_images[positions], train_labels[positions])
        )

    return source_lib.Source(
        num_classes=NUM_CLASSES,
        class_names=[f"class_{i}" for i in range(NUM_CLASSES)],
        preprocessing="cifar",
        image_shape=IMAGE_SHAPE,
        train_labels=lambda: train_labels,
        read_train=read_train,
        other_splits={
            "test": lambda: tf.data.Dataset.from_tensor_slices(
                (test_images, test_labels)
            )
        },
        other_sizes={"test": lambda: len(test_labels)},
        other_labels={"test": lambda: test_labels},
        long_tail=False,
    )
