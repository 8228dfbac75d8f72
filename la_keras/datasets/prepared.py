"""Prepared datasets: every split of a long-tailed set in one checked file.

`python -m launch.prepare --dataset=NAME --output=PATH` (where TFDS works)
writes what `la_keras.datasets.load` gives for NAME and its arguments: the
uint8 images and int64 labels of every split (train after the long-tail
profile and holdout, test, and the holdout if there is one), the class
counts, the priors, the class names and where the data came from.
`load("prepared:PATH", split)` reads it back; `read(PATH)` needs only numpy
and the standard library, so the file also feeds a machine without
TensorFlow.

The file is a zip archive (LZMA-compressed, lossless) of one `.npy` member
per array and a `metadata.json` that holds each array's SHA-256; `read`
verifies them and names the file when anything is missing or damaged.
Opening the archive, reading its metadata and its checksum are
`la_keras.datasets.prepared_archive`; `read_metadata`, `checksum` and
`DamagedFileError` are re-exported here.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import io
import json
import os
import zipfile

import numpy as np

from la_keras.datasets import prepared_archive
from la_keras.datasets import split_checks
from la_keras.datasets.info import DatasetInfo
from la_keras.datasets.prepared_archive import FORMAT
from la_keras.datasets.prepared_archive import FORMAT_VERSION
from la_keras.datasets.prepared_archive import METADATA
from la_keras.datasets.prepared_archive import checksum as checksum
from la_keras.datasets.prepared_archive import read_metadata

PREFIX = "prepared:"
# Re-exported, as `checksum` and `read_metadata` above.
DamagedFileError = prepared_archive.DamagedFileError


@dataclasses.dataclass(frozen=True)
class PreparedData:
    """The contents of a prepared file.

    Args:
        path: the file.
        splits: `{split: (uint8 images [N, H, W, C], int64 labels [N])}`.
        metadata: num_classes, class_names, train_counts, priors,
            image_shape, preprocessing, num_examples and source.
        checks: the test counts and the test images identical to training
            ones (`split_checks.of_arrays`), for the `DatasetInfo`.
    """

    path: str
    splits: dict
    metadata: dict
    checks: dict = dataclasses.field(default_factory=dict)


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def write(path: str, splits: dict, info, source: dict) -> str:
    """Writes a prepared file atomically (beside `path`, then renamed).

    Args:
        path: the file to write.
        splits: `{split: (images, labels)}` numpy arrays, "train" and
            "test" required.
        info: the `DatasetInfo` of the data.
        source: how the data was made (dataset name and arguments).

    Returns:
        `path`.
    """
    for required in ("train", "test"):
        if required not in splits:
            raise ValueError(f"A prepared file needs the {required!r} split.")
    arrays, num_examples = {}, {}
    for split, (images, labels) in splits.items():
        images = np.asarray(images, np.uint8)
        labels = np.asarray(labels, np.int64).reshape(-1)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(
                f"Split {split!r}: {images.shape[0]} images but "
                f"{labels.shape[0]} labels."
            )
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels
        num_examples[split] = int(labels.shape[0])
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "num_classes": int(info.num_classes),
        "class_names": [str(n) for n in info.class_names],
        "train_counts": [int(c) for c in info.train_counts],
        "priors": [float(p) for p in info.priors],
        "image_shape": [int(d) for d in info.image_shape],
        "preprocessing": info.preprocessing,
        "resize": None if info.resize is None else list(info.resize),
        "num_examples": num_examples,
        "source": source,
        "sha256": {key: _sha256(value) for key, value in arrays.items()},
    }
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, f".{os.path.basename(path)}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_LZMA) as archive:
        archive.writestr(METADATA, json.dumps(metadata, indent=1))
        for key, value in arrays.items():
            archive.writestr(f"{key}.npy", _npy_bytes(value))
    os.replace(partial, path)
    return path


def read(path: str) -> PreparedData:
    """Reads and verifies a prepared file (numpy and the standard library).

    Raises:
        FileNotFoundError: no such file.
        DamagedFileError: (a `ValueError`) the file cannot be read back as
            it was written: truncated, a flipped byte, a checksum that
            differs; the message names the file.
    """
    metadata = read_metadata(path)
    splits = {}
    with prepared_archive.open_archive(path) as archive:
        for split in metadata["num_examples"]:
            pair = []
            for kind in ("images", "labels"):
                key = f"{split}_{kind}"
                array = np.load(
                    io.BytesIO(archive.read(f"{key}.npy")),
                    allow_pickle=False,
                )
                if _sha256(array) != metadata["sha256"][key]:
                    raise prepared_archive.damaged(
                        path, f"checksum of {key} differs"
                    )
                pair.append(array)
            splits[split] = tuple(pair)
    checks = split_checks.of_arrays(splits, metadata["num_classes"])
    return PreparedData(path, splits, metadata, checks)


def dataset_info(data: PreparedData, name: str | None = None) -> DatasetInfo:
    """The `DatasetInfo` of a prepared file, as `load` gives it; numpy only.

    Args:
        data: what `read` returned.
        name: the dataset name (default `"prepared:<path>"`).
    """
    meta = data.metadata
    return DatasetInfo(
        name=name or PREFIX + data.path,
        num_classes=meta["num_classes"],
        class_names=meta["class_names"],
        train_counts=np.asarray(meta["train_counts"], np.int64),
        priors=np.asarray(meta["priors"], np.float64),
        image_shape=tuple(meta["image_shape"]),
        num_examples={s: len(data.splits[s][1]) for s in data.splits},
        preprocessing=meta["preprocessing"],
        resize=meta.get("resize"),
        **data.checks,
    )


def _file_stamp(path: str) -> tuple:
    try:
        stat = os.stat(path)
    except OSError:
        return (0, 0)
    return (stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=1)
def _read_once(path: str, *_stamp) -> PreparedData:
    return read(path)


def split_arrays(
    path: str,
    split: str,
    name: str | None = None,
    holdout_fraction: float = 0.0,
    seed: int = 0,
):
    """`(uint8 images, int64 labels, DatasetInfo)` of one split; numpy only.

    The file is read (and verified) once for all its splits, and again only
    when it changes.

    Args:
        path: the file.
        split: "train", "test" or "holdout".
        name: the dataset name of the `DatasetInfo`.
        holdout_fraction: for a file written without a holdout, the
            fraction of each class's training images set aside as the
            holdout split, chosen from `seed` by the class-stratified
            selection every dataset uses (`selection.select`): the same
            images `la_keras.datasets.load` sets aside. A file with a
            holdout of its own takes 0.
        seed: the seed of that selection.

    Raises:
        FileNotFoundError: no such file.
        ValueError: a damaged file, no such split, or a holdout fraction for
            a file that has its own holdout.
    """
    data = _read_once(os.path.abspath(path), *_file_stamp(path))
    name = name or PREFIX + path
    info = dataset_info(data, name)
    if holdout_fraction:
        return _derived_split(data, split, info, holdout_fraction, seed)
    if split not in data.splits:
        raise ValueError(
            f"Prepared dataset {path} has no {split!r} split; it has "
            f"{sorted(data.splits)}."
            + (
                " Pass a holdout fraction (--holdout_fraction=0.1) to set "
                "one aside from its train split."
                if split == "holdout"
                else ""
            )
        )
    images, labels = data.splits[split]
    return images, np.asarray(labels, np.int64), info


def check_holdout_fraction(metadata: dict, path: str, fraction: float) -> None:
    """ValueError when a file with a holdout of its own gets a fraction."""
    if fraction and "holdout" in metadata["num_examples"]:
        raise ValueError(
            "Invalid value for argument `holdout_fraction`: prepared dataset "
            f"{path} has a holdout split of its own (written by launch.prepare "
            "--holdout_fraction); pass 0 to use it, or prepare the file "
            "with --holdout_fraction=0 to set the holdout aside at training "
            f"time. Received: holdout_fraction={fraction}"
        )


def _derived_split(data, split, info, fraction, seed):
    """A split of a file whose holdout is taken out of its train split."""
    from la_keras import priors as priors_lib
    from la_keras.datasets import selection

    check_holdout_fraction(data.metadata, data.path, fraction)
    images, labels = data.splits["train"]
    labels = np.asarray(labels, np.int64)
    train_pos, holdout_pos = selection.select(
        labels, info.num_classes, None, fraction, seed
    )
    counts = np.bincount(labels[train_pos], minlength=info.num_classes)
    info = dataclasses.replace(
        info,
        train_counts=counts,
        priors=priors_lib.from_counts(counts),
        num_examples=dict(
            info.num_examples,
            train=int(len(train_pos)),
            holdout=int(len(holdout_pos)),
        ),
    )
    if split == "test":
        test_images, test_labels = data.splits["test"]
        return test_images, np.asarray(test_labels, np.int64), info
    if split not in ("train", "holdout"):
        raise ValueError(
            f"Prepared dataset {data.path} has no {split!r} split; it has "
            f"{sorted(data.splits)} and a holdout taken from train."
        )
    positions = train_pos if split == "train" else holdout_pos
    return images[positions], labels[positions], info


def make_source(path: str):
    """The `Source` of a prepared file, for `la_keras.datasets.load`.

    The file's train split is already long-tailed, so the source takes no
    profile; its holdout is the file's own, or for a file written without
    one a class-stratified slice of train (`holdout_fraction`), as
    `split_arrays` selects it.
    """
    import tensorflow as tf

    from la_keras.datasets import source as source_lib

    data = read(path)
    meta = data.metadata
    train_images, train_labels = data.splits["train"]

    def read_train(positions):
        if positions is None:
            return tf.data.Dataset.from_tensor_slices(
                (train_images, train_labels)
            )
        return tf.data.Dataset.from_tensor_slices(
            (train_images[positions], train_labels[positions])
        )

    others = [s for s in data.splits if s != "train"]
    return source_lib.Source(
        num_classes=meta["num_classes"],
        class_names=meta["class_names"],
        preprocessing=meta["preprocessing"],
        image_shape=tuple(meta["image_shape"]),
        train_labels=lambda: train_labels,
        read_train=read_train,
        other_splits={
            s: (lambda s=s: tf.data.Dataset.from_tensor_slices(data.splits[s]))
            for s in others
        },
        other_sizes={s: (lambda s=s: len(data.splits[s][1])) for s in others},
        other_labels={s: (lambda s=s: data.splits[s][1]) for s in others},
        long_tail=False,
        priors=np.asarray(meta["priors"], np.float64),
        resize=meta.get("resize"),
        checks=data.checks,
    )
