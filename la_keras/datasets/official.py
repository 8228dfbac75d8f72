"""The official release's CIFAR-LT TFRecord files.

Users who have the files of google-research `logit_adjustment` train on
byte-identical data with the names `cifar10-lt` and `cifar100-lt`. A data
directory holds:

    cifar10-lt_train.tfrecord   cifar10_test.tfrecord
    cifar100-lt_train.tfrecord  cifar100_test.tfrecord
    cifar10-lt_base_probs.txt   cifar100-lt_base_probs.txt   (optional)

Each record is a `tf.train.Example` with `image/encoded` (the raw bytes of a
uint8 32x32x3 image, not PNG) and `image/class/label` (int64). Records are
parsed a batch at a time (`parse_example` + `decode_raw` on the batch).
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from la_keras import priors as priors_lib
from la_keras.datasets import source as source_lib

IMAGE_KEY = "image/encoded"
LABEL_KEY = "image/class/label"
IMAGE_SHAPE = (32, 32, 3)
FEATURES = {
    IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
    LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
}
NUM_CLASSES = {"cifar10-lt": 10, "cifar100-lt": 100}
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
_PARSE_BATCH = 1024


def file_paths(name: str, data_dir: str) -> dict:
    """The train, test and base_probs paths of an official dataset."""
    base = name.replace("-lt", "")
    return {
        "train": os.path.join(data_dir, f"{name}_train.tfrecord"),
        "test": os.path.join(data_dir, f"{base}_test.tfrecord"),
        "priors": os.path.join(data_dir, f"{name}_base_probs.txt"),
    }


def write_tfrecord(path: str, images, labels) -> None:
    """Writes images and labels in the official format.

    Args:
        path: output file.
        images: uint8 array `[N, 32, 32, 3]`.
        labels: int array `[N]`.
    """
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != IMAGE_SHAPE:
        raise ValueError(
            "Invalid value for argument `images`. Expected uint8 images of "
            f"shape [N, 32, 32, 3]. Received: dtype={images.dtype}, "
            f"shape={images.shape}"
        )
    with tf.io.TFRecordWriter(path) as writer:
        for image, label in zip(images, np.asarray(labels), strict=True):
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        IMAGE_KEY: tf.train.Feature(
                            bytes_list=tf.train.BytesList(
                                value=[image.tobytes()]
                            )
                        ),
                        LABEL_KEY: tf.train.Feature(
                            int64_list=tf.train.Int64List(value=[int(label)])
                        ),
                    }
                )
            )
            writer.write(example.SerializeToString())


def parse_batch(serialized):
    """Parses a batch of serialized records into uint8 images and labels."""
    parsed = tf.io.parse_example(serialized, FEATURES)
    images = tf.io.decode_raw(parsed[IMAGE_KEY], tf.uint8)
    images = tf.reshape(images, (-1, *IMAGE_SHAPE))
    return images, parsed[LABEL_KEY]


def check_file(path: str, name: str) -> None:
    """Raises a clear error for a missing file or records of the wrong form."""
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(
            f"Official TFRecord file not found: {path}. Dataset {name!r} reads "
            "the official release's files from `data_dir`: put "
            f"{', '.join(os.path.basename(p) for p in file_paths(name, '.').values())}"
            " there (base_probs is optional), or use "
            f"{name.replace('-', '_')!r} to build the same profile from TFDS."
        )
    for record in tf.data.TFRecordDataset(path).take(1):
        example = tf.train.Example.FromString(record.numpy())
        feature = example.features.feature
        image = feature.get(IMAGE_KEY)
        label = feature.get(LABEL_KEY)
        size = int(np.prod(IMAGE_SHAPE))
        ok = (
            image is not None
            and label is not None
            and len(image.bytes_list.value) == 1
            and len(label.int64_list.value) == 1
        )
        if ok and len(image.bytes_list.value[0]) == size:
            return
        found = {
            k: f"{len(v.bytes_list.value[0])} bytes"
            if v.bytes_list.value
            else v.WhichOneof("kind")
            for k, v in feature.items()
        }
        raise ValueError(
            f"Invalid official TFRecord {path}: expected features "
            f"'{IMAGE_KEY}' (raw uint8 32x32x3 bytes, {size} bytes, not PNG) "
            f"and '{LABEL_KEY}' (int64). Found: {found}. Write files in this "
            "format with `la_keras.datasets.official.write_tfrecord`."
        )


def read_records(path: str) -> tf.data.Dataset:
    """(uint8 image, int64 label) pairs of an official file, in file order."""
    ds = tf.data.TFRecordDataset(path).batch(_PARSE_BATCH)
    return ds.map(parse_batch).unbatch()


def read_labels(path: str) -> np.ndarray:
    ds = tf.data.TFRecordDataset(path).batch(8192)
    ds = ds.map(
        lambda s: tf.io.parse_example(s, {LABEL_KEY: FEATURES[LABEL_KEY]})
    )
    batches = [b[LABEL_KEY] for b in ds.as_numpy_iterator()]
    return np.concatenate(batches) if batches else np.zeros([0], np.int64)


def class_names(name: str) -> list:
    if name == "cifar10-lt":
        return list(CIFAR10_NAMES)
    return CIFAR100_NAMES.split()


def make_source(name: str, data_dir: str | None) -> source_lib.Source:
    """A `Source` over the official files of `name` in `data_dir`."""
    if data_dir is None:
        raise ValueError(
            f"Invalid value for argument `data_dir`: dataset {name!r} reads the "
            "official release's TFRecord files and needs the folder that "
            f"holds them. Received: data_dir=None"
        )
    paths = file_paths(name, os.fspath(data_dir))
    check_file(paths["train"], name)
    check_file(paths["test"], name)
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
        train_labels=lambda: read_labels(paths["train"]),
        read_train=read_train,
        other_splits={"test": lambda: read_records(paths["test"])},
        other_sizes={"test": lambda: len(read_labels(paths["test"]))},
        long_tail=False,
        priors=priors,
    )
