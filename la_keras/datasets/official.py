"""The official release's CIFAR-LT TFRecord files.

Users who have the files of google-research `logit_adjustment` train on
byte-identical data with the names `cifar10-lt` and `cifar100-lt`. A data
directory holds:

    cifar10-lt_train.tfrecord   cifar10_test.tfrecord
    cifar100-lt_train.tfrecord  cifar100_test.tfrecord
    cifar10-lt_base_probs.txt   cifar100-lt_base_probs.txt   (optional)

Each record is a `tf.train.Example` with `image/encoded` (the raw bytes of a
uint8 32x32x3 image, not PNG) and `image/class/label` (int64); see
`official_records.py`. Loading reads both TFRecord files through once and
refuses a damaged file: a truncated copy, a record that does not parse, a
label out of range, or a record count other than the official one
(`NUM_EXAMPLES`) or the one stated with `expected_examples`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import numpy as np
import tensorflow as tf

from la_keras import priors as priors_lib
from la_keras.datasets import official_records as records
from la_keras.datasets import source as source_lib
from la_keras.datasets.arguments import is_int_at_least
from la_keras.datasets.official_records import FEATURES
from la_keras.datasets.official_records import IMAGE_KEY
from la_keras.datasets.official_records import IMAGE_SHAPE
from la_keras.datasets.official_records import LABEL_KEY
from la_keras.datasets.official_records import describe_record
from la_keras.datasets.official_records import parse_batch
from la_keras.datasets.official_records import read_records
from la_keras.datasets.official_records import write_tfrecord

__all__ = [
    "FEATURES",
    "IMAGE_KEY",
    "IMAGE_SHAPE",
    "LABEL_KEY",
    "NUM_CLASSES",
    "NUM_EXAMPLES",
    "SHUFFLE_BUFFER",
    "check_expected_examples",
    "check_file",
    "class_names",
    "describe_record",
    "file_paths",
    "make_source",
    "parse_batch",
    "read_records",
    "write_tfrecord",
]

NUM_CLASSES = {"cifar10-lt": 10, "cifar100-lt": 100}
# The records of the official files (the release's `dataset_mappings`).
NUM_EXAMPLES = {
    "cifar10-lt": {"train": 12406, "test": 10000},
    "cifar100-lt": {"train": 10847, "test": 10000},
}
# The official release shuffles its TFRecords within this many records.
SHUFFLE_BUFFER = 10_000
N_MAX = {"cifar10-lt": 5000, "cifar100-lt": 500}
CIFAR10_NAMES = [
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
]
# The CIFAR-100 fine labels in label order (the dataset's `meta` file).
CIFAR100_NAMES = """
apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy
bridge bus butterfly camel can castle caterpillar cattle chair chimpanzee
clock cloud cockroach couch crab crocodile cup dinosaur dolphin elephant
flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower
leopard lion lizard lobster man maple_tree motorcycle mountain mouse mushroom
oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate
poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew
skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper
table tank telephone television tiger tractor train trout tulip turtle
wardrobe whale willow_tree wolf woman worm
"""


def file_paths(name: str, data_dir: str) -> dict:
    """The train, test and base_probs paths of an official dataset."""
    base = name.replace("-lt", "")
    return {
        "train": os.path.join(data_dir, f"{name}_train.tfrecord"),
        "test": os.path.join(data_dir, f"{base}_test.tfrecord"),
        "priors": os.path.join(data_dir, f"{name}_base_probs.txt"),
    }


def check_expected_examples(name: str, expected_examples) -> dict:
    """The record count each file of `name` must hold: split -> count.

    Args:
        name: `"cifar10-lt"` or `"cifar100-lt"`.
        expected_examples: None for the official sizes (`NUM_EXAMPLES`), or
            a mapping from `"train"` and/or `"test"` to the number of records
            of that file, for files of another size; a split left out keeps
            its official size.
    """
    counts = dict(NUM_EXAMPLES[name])
    if expected_examples is None:
        return counts
    valid = (
        isinstance(expected_examples, Mapping)
        and set(expected_examples) <= set(counts)
        and all(is_int_at_least(n, 1) for n in expected_examples.values())
    )
    if not valid:
        raise ValueError(
            "Invalid value for argument `expected_examples`. Expected None "
            "(the official sizes, "
            f"{NUM_EXAMPLES[name]}) or a dict from 'train' and/or 'test' to "
            "the number of records of that file, an integer >= 1. Received: "
            f"expected_examples={expected_examples!r}"
        )
    counts.update({k: int(v) for k, v in expected_examples.items()})
    return counts


def check_file(
    path: str, name: str, split: str = "train", expected: int | None = None
) -> np.ndarray:
    """Reads every record of an official file and returns its labels.

    Args:
        path: the TFRecord file.
        name: `"cifar10-lt"` or `"cifar100-lt"`.
        split: which file it is, for the messages.
        expected: the number of records it must hold, or None for any.

    Returns:
        The int64 labels of the records, in file order.

    Raises:
        FileNotFoundError: for a missing file.
        ValueError: naming the file, see `official_records.check_records`.
    """
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"Official TFRecord file not found: {path}. Dataset {name!r} reads "
            "the official release's files from `data_dir`: put "
            f"{', '.join(os.path.basename(p) for p in file_paths(name, '.').values())}"
            " there (base_probs is optional), or use "
            f"{name.replace('-', '_')!r} to build the same profile from TFDS."
        )
    return records.check_records(
        path,
        NUM_CLASSES[name],
        expected,
        where=f"Invalid official TFRecord {path} (split {split!r} of {name!r})",
    )


def class_names(name: str) -> list:
    if name == "cifar10-lt":
        return list(CIFAR10_NAMES)
    return CIFAR100_NAMES.split()


def make_source(
    name: str, data_dir: str | None, expected_examples=None
) -> source_lib.Source:
    """A `Source` over the official files of `name` in `data_dir`.

    Both files are read through once here (see `check_file`), so that a
    damaged file or a bad prior file fails when the dataset is loaded, not
    during training.

    Args:
        name: `"cifar10-lt"` or `"cifar100-lt"`.
        data_dir: the folder of the files.
        expected_examples: the record count of each file, see
            `check_expected_examples`; None for the official sizes.
    """
    expected = check_expected_examples(name, expected_examples)
    if data_dir is None:
        raise ValueError(
            f"Invalid value for argument `data_dir`: dataset {name!r} reads the "
            "official release's TFRecord files and needs the folder that "
            f"holds them. Received: data_dir=None"
        )
    paths = file_paths(name, os.fspath(data_dir))
    labels = {
        split: check_file(paths[split], name, split, expected[split])
        for split in ("train", "test")
    }
    if tf.io.gfile.exists(paths["priors"]):
        priors = priors_lib.load_txt(paths["priors"])
    else:
        counts = priors_lib.exp_profile_counts(
            N_MAX[name], NUM_CLASSES[name], 100
        )
        priors = priors_lib.from_counts(counts)
    if len(priors) != NUM_CLASSES[name]:
        raise ValueError(
            f"Invalid prior file {paths['priors']}: expected "
            f"{NUM_CLASSES[name]} classes, found {len(priors)}."
        )

    def read_train(positions):
        ds = read_records(paths["train"])
        if positions is None:
            return ds
        return source_lib.keep_positions(ds, positions)

    return source_lib.Source(
        num_classes=NUM_CLASSES[name],
        class_names=class_names(name),
        preprocessing="cifar",
        image_shape=IMAGE_SHAPE,
        train_labels=lambda: labels["train"],
        read_train=read_train,
        other_splits={"test": lambda: read_records(paths["test"])},
        other_sizes={"test": lambda: len(labels["test"])},
        other_labels={"test": lambda: labels["test"]},
        long_tail=False,
        priors=priors,
    )
