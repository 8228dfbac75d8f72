"""Reads TFDS image classification datasets, with errors that say what to do.

Splits are read in TFDS's canonical order: `shuffle_files=False` and an
interleave cycle of 1, i.e. shard after shard and record after record as
`tfds build` wrote them. That order fixes which examples a long-tail profile
keeps (see `selection.py`); it does not depend on tf.data parallelism.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from la_keras.datasets import source as source_lib

# Label arrays of prepared (on-disk) splits, keyed by (data_dir, split).
_LABEL_CACHE: dict = {}
# Largest image side that still gets the CIFAR recipe; bigger or variable-size
# images get the ImageNet recipe.
MAX_CIFAR_SIDE = 64


def get_builder(tfds_name: str, data_dir: str | None):
    """Returns the TFDS builder, or a ValueError for an unknown name."""
    try:
        return tfds.builder(tfds_name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        raise ValueError(
            f"Invalid value for argument `name`: TFDS has no dataset named "
            f"{tfds_name!r}. Pass a name from `tfds.list_builders()` after "
            f"'tfds:'. Received: name='tfds:{tfds_name}'"
        ) from None


def _not_found_error(builder, data_dir):
    name = builder.name
    where = (
        data_dir or os.environ.get("TFDS_DATA_DIR") or "~/tensorflow_datasets"
    )
    if builder.MANUAL_DOWNLOAD_INSTRUCTIONS:
        manual_dir = os.path.join(
            str(builder.data_dir_root), "downloads", "manual"
        )
        files = ""
        if name == "imagenet_lt":
            files = "ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar "
        return FileNotFoundError(
            f"Dataset {name!r} is not prepared in data_dir={where!r} and needs "
            f"a manual download. Place {files}in {manual_dir} (TFDS's "
            f"instructions: {' '.join(builder.MANUAL_DOWNLOAD_INSTRUCTIONS.split())}"
            f"), then run `tfds build {name} --data_dir={where}` and pass that "
            "data_dir (or set TFDS_DATA_DIR)."
        )
    return FileNotFoundError(
        f"Dataset {name!r} was not found in data_dir={where!r}. Set `data_dir` "
        "(or the TFDS_DATA_DIR environment variable) to a folder holding a "
        f"prepared copy, or download it with `tfds build {name} "
        f"--data_dir={where}` on a machine with internet access."
    )


def read_split(builder, split: str, data_dir=None, decoders=None):
    """`builder.as_dataset` in canonical order, or a FileNotFoundError."""
    try:
        return builder.as_dataset(
            split=split,
            shuffle_files=False,
            decoders=decoders,
            read_config=tfds.ReadConfig(interleave_cycle_length=1),
        )
    except (AssertionError, FileNotFoundError, tf.errors.NotFoundError):
        raise _not_found_error(builder, data_dir) from None


def feature_keys(builder) -> tuple[str, str]:
    """The image and class-label feature names, or a ValueError."""
    features = dict(builder.info.features.items())
    keys = builder.info.supervised_keys
    candidates = []
    if (
        isinstance(keys, tuple)
        and len(keys) == 2
        and all(isinstance(k, str) for k in keys)
    ):
        candidates.append(keys)
    images = [
        k for k, f in features.items() if isinstance(f, tfds.features.Image)
    ]
    labels = [
        k
        for k, f in features.items()
        if isinstance(f, tfds.features.ClassLabel)
    ]
    if images and labels:
        candidates.append(
            (images[0], "label" if "label" in labels else labels[0])
        )
    for image_key, label_key in candidates:
        if isinstance(features.get(image_key), tfds.features.Image) and (
            isinstance(features.get(label_key), tfds.features.ClassLabel)
        ):
            return image_key, label_key
    raise ValueError(
        f"Invalid value for argument `name`: TFDS dataset {builder.name!r} is "
        "not an image classification dataset. Expected an Image feature and "
        f"a ClassLabel feature. Found: {features}"
    )


def read_labels(builder, split: str, data_dir=None) -> np.ndarray:
    """All labels of a split, in canonical order, without decoding images."""
    key = (str(builder.data_dir), split)
    cached = _LABEL_CACHE.get(key) if builder.is_prepared() else None
    if cached is not None:
        return cached
    _, label_key = feature_keys(builder)
    ds = read_split(
        builder,
        split,
        data_dir,
        decoders=tfds.decode.PartialDecoding({label_key: True}),
    )
    batches = [b[label_key] for b in ds.batch(8192).as_numpy_iterator()]
    labels = np.concatenate(batches).astype(np.int64) if batches else None
    if labels is None:
        labels = np.zeros([0], np.int64)
    if builder.is_prepared():
        _LABEL_CACHE[key] = labels
    return labels


def read_images(builder, split, data_dir=None, positions=None):
    """(uint8 image, int64 label) pairs of a split, optionally a subset.

    Args:
        positions: sorted positions into the split to keep, or None for all.
            Images are decoded only for the kept examples.
    """
    image_key, label_key = feature_keys(builder)
    image_feature = builder.info.features[image_key]
    ds = read_split(
        builder,
        split,
        data_dir,
        decoders={image_key: tfds.decode.SkipDecoding()},
    )
    ds = ds.map(lambda ex: (ex[image_key], ex[label_key]))
    if positions is not None:
        ds = source_lib.keep_positions(ds, positions)
    return ds.map(
        lambda encoded, label: (
            image_feature.decode_example(encoded),
            tf.cast(label, tf.int64),
        ),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def num_examples(builder, split, data_dir=None) -> int:
    """Number of examples of a split (from the metadata, else by counting)."""
    if split in builder.info.splits:
        return int(builder.info.splits[split].num_examples)
    ds = read_split(builder, split, data_dir)
    count = int(ds.cardinality())
    if count < 0:
        count = int(ds.reduce(np.int64(0), lambda n, _: n + 1))
    return count


def make_source(
    tfds_name: str,
    data_dir: str | None,
    *,
    test_split: str | None = None,
    holdout_split: str | None = None,
    long_tail: bool = True,
) -> source_lib.Source:
    """A `Source` over a TFDS image classification dataset.

    Args:
        tfds_name: the TFDS name, e.g. `"cifar10"`.
        data_dir: TFDS data_dir; None uses TFDS_DATA_DIR or TFDS's default.
        test_split: split used as the test set. Defaults to `"test"`, else
            `"validation"` when the dataset has no test split.
        holdout_split: the dataset's own balanced holdout split, if any.
        long_tail: whether a long-tail profile is applied to the train split.
    """
    builder = get_builder(tfds_name, data_dir)
    image_key, label_key = feature_keys(builder)
    label_feature = builder.info.features[label_key]
    image_shape = tuple(builder.info.features[image_key].shape)
    if test_split is None:
        splits = builder.info.splits
        test_split = "validation" if splits and "test" not in splits else "test"
    small = None not in image_shape and max(image_shape[:2]) <= MAX_CIFAR_SIDE
    preprocessing = "cifar" if small else "imagenet"
    if not small:
        image_shape = (224, 224, 3)

    other_splits, other_sizes, other_labels = {}, {}, {}
    for split, tfds_split in (("test", test_split), ("holdout", holdout_split)):
        if tfds_split is None:
            continue
        other_splits[split] = functools.partial(
            read_images, builder, tfds_split, data_dir
        )
        other_sizes[split] = functools.partial(
            num_examples, builder, tfds_split, data_dir
        )
        other_labels[split] = functools.partial(
            read_labels, builder, tfds_split, data_dir
        )
    return source_lib.Source(
        num_classes=int(label_feature.num_classes),
        class_names=list(label_feature.names),
        preprocessing=preprocessing,
        image_shape=image_shape,
        train_labels=lambda: read_labels(builder, "train", data_dir),
        read_train=lambda positions: read_images(
            builder, "train", data_dir, positions
        ),
        other_splits=other_splits,
        other_sizes=other_sizes,
        other_labels=other_labels,
        long_tail=long_tail,
    )
