"""What the test split says about the evaluation: missing classes, leakage.

Two facts a `DatasetInfo` carries when they are cheap to know (folder
datasets and prepared files):

- `test_counts`: the images of each class in the test split. A class with
  training images and none in test has no test accuracy: the balanced
  accuracy is the mean over the classes that have test images only
  (`la_keras.metrics.BalancedAccuracy`).
- `test_duplicates`: how many test images have the bytes of a training
  image (files of a folder, pixel arrays of a prepared file), and
  `test_duplicate_examples` the first `(test, training)` pairs: the model
  was trained, or its tau tuned, on those test images.

Identical files are found by content hash. A folder's index hashes each
file as it decodes it (`folder_images.inspect_image` reads it whole);
`hash_colliding` hashes only the files whose byte size occurs in both
splits, for an index made before the hashes were kept.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Sequence

import numpy as np

# How many duplicate pairs a `DatasetInfo` names, at most (it counts them all).
NAMED_DUPLICATES = 5


def digest(data: bytes) -> str:
    """SHA-256 (hex) of a file's or an image's bytes."""
    return hashlib.sha256(data).hexdigest()


def file_digest(path: str) -> str | None:
    """`digest` of a file's contents; None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return digest(f.read())
    except OSError:
        return None


def test_counts(test_labels, num_classes: int) -> np.ndarray:
    """int64 `[num_classes]`: the test images of each class (labels
    outside `[0, num_classes)` are `registry.check_labels`' to refuse)."""
    labels = np.asarray(test_labels, np.int64).reshape(-1)
    labels = labels[(labels >= 0) & (labels < num_classes)]
    return np.bincount(labels, minlength=num_classes).astype(np.int64)


def classes_without_test_images(train_counts, counts) -> list[int]:
    """Labels of the classes with training images and no test image."""
    train = np.asarray(train_counts)
    return [
        int(c) for c in np.flatnonzero((train > 0) & (np.asarray(counts) == 0))
    ]


def duplicate_pairs(
    train_keys: Sequence, test_keys: Sequence
) -> list[tuple[int, int]]:
    """`(test position, training position)` of each test item whose key
    (content hash) a training item has; the first such training item.

    None keys (unknown contents) match nothing.
    """
    first = {}
    for j, key in enumerate(train_keys):
        if key is not None:
            first.setdefault(key, j)
    return [
        (i, first[key])
        for i, key in enumerate(test_keys)
        if key is not None and key in first
    ]


def describe_pairs(pairs, test_names, train_names) -> dict:
    """`DatasetInfo` keywords `test_duplicates` (the count) and
    `test_duplicate_examples` (the first pairs, by name).

    Args:
        pairs: `duplicate_pairs`' result.
        test_names: a name for each test item (e.g. its relative path).
        train_names: a name for each training item.
    """
    named = tuple(
        (str(test_names[i]), str(train_names[j]))
        for i, j in pairs[:NAMED_DUPLICATES]
    )
    return {"test_duplicates": len(pairs), "test_duplicate_examples": named}


def array_digests(images) -> list[str]:
    """`digest` of each image (`[N, ...]` array) of a split."""
    images = np.ascontiguousarray(images)
    return [digest(image.tobytes()) for image in images]


def of_arrays(splits: dict, num_classes: int) -> dict:
    """`DatasetInfo` keywords (`test_counts`, `test_duplicates`,
    `test_duplicate_examples`) of a dataset held as arrays: `{split: (images, labels)}`.

    The test images are compared with those of every other split (train and
    holdout: what the model is trained or its tau tuned on). Images are named
    `split[position]`.
    """
    test_images, test_labels = splits["test"]
    names, digests = [], []
    for split, (images, _) in splits.items():
        if split != "test":
            names += [f"{split}[{j}]" for j in range(len(images))]
            digests += array_digests(images)
    test_digests = array_digests(test_images)
    pairs = duplicate_pairs(digests, test_digests)
    test_names = [f"test[{i}]" for i in range(len(test_images))]
    return {
        "test_counts": test_counts(test_labels, num_classes),
        **describe_pairs(pairs, test_names, names),
    }


def hash_colliding(paths: dict, sizes: dict, digests: dict) -> dict:
    """`digests` with the missing ones filled where a file could be a
    duplicate: its byte size occurs in both "train" and "test".

    Args:
        paths: `{split: [path]}`.
        sizes: `{split: [byte size]}`, aligned with `paths`.
        digests: `{split: [digest or None]}`, aligned with `paths`.
    """
    by_split = {s: collections.Counter(int(v) for v in sizes[s]) for s in paths}
    shared = set(by_split.get("train", ())) & set(by_split.get("test", ()))
    filled = {}
    for split in paths:
        filled[split] = [
            d if d is not None or int(size) not in shared else file_digest(p)
            for p, size, d in zip(
                paths[split], sizes[split], digests[split], strict=True
            )
        ]
    return filled
