"""`load` and `names`: every dataset la_keras knows, by name.

| name              | source                                   | test split        | holdout default        |
| ----------------- | ---------------------------------------- | ----------------- | ---------------------- |
| `cifar10_lt`      | TFDS `cifar10` train, long-tail profile  | TFDS `test`       | slice of train         |
| `cifar100_lt`     | TFDS `cifar100` train, long-tail profile | TFDS `test`       | slice of train         |
| `mnist_lt`        | TFDS `mnist` train, long-tail profile    | TFDS `test`       | slice of train         |
| `tfds:<name>`     | any TFDS image classification dataset    | `test` (else `validation`) | slice of train |
| `imagenet_lt`     | TFDS `imagenet_lt` (manual download)     | TFDS `test`       | TFDS `validation` (20 a class) |
| `inaturalist2018` | TFDS `i_naturalist2018`                  | TFDS `validation` | slice of train         |
| `cifar10-lt`, `cifar100-lt` | the official TFRecord files    | `<base>_test.tfrecord` | slice of train    |
| `test`            | synthetic, no files                      | 2 images a class  | slice of train         |
| `prepared:<path>` | a file of `launch.prepare`               | the file's        | the file's             |
| `folder:<path>`   | `<path>/train/<class>/<images>`          | `<path>/test/` (or `val/`) | slice of train |

The holdout, for choosing tau and never the test split: with
`holdout_fraction > 0`, a class-stratified slice of the (long-tailed) train
split, which `split="train"` then excludes (see `selection.py` for which
examples); with `holdout_fraction=0`, the dataset's own balanced holdout
where it has one (`imagenet_lt`), else `split="holdout"` is an error.
"""

from __future__ import annotations

import numbers

import numpy as np

from la_keras import priors as priors_lib
from la_keras.datasets import folder
from la_keras.datasets import official
from la_keras.datasets import prepared
from la_keras.datasets import selection
from la_keras.datasets import synthetic
from la_keras.datasets import tfds_source
from la_keras.datasets.info import DatasetInfo

SPLITS = ("train", "test", "holdout")
TFDS_PREFIX = "tfds:"
# Names that take a path or a TFDS name after their prefix.
PATTERNS = ("tfds:<name>", "prepared:<path>", "folder:<path>")
_PREFIXES = (TFDS_PREFIX, prepared.PREFIX, folder.PREFIX)
# The keywords of `load` that only folder datasets take, and their defaults.
FOLDER_OPTIONS = dict(
    image_size=None, skip_bad_images=False, augment="auto", index_cache=None
)
DEFAULT_RATIO = selection.DEFAULT_RATIO
DEFAULT_PROFILE = selection.DEFAULT_PROFILE
_PROFILED = {
    "cifar10_lt": "cifar10",
    "cifar100_lt": "cifar100",
    "mnist_lt": "mnist",
}
_NATURAL = {
    "imagenet_lt": dict(
        tfds_name="imagenet_lt", test_split="test", holdout_split="validation"
    ),
    "inaturalist2018": dict(
        tfds_name="i_naturalist2018", test_split="validation"
    ),
}


def names() -> list[str]:
    """Names accepted by `load`, then the patterns of `PATTERNS`.

    `"tfds:<name>"` is any TFDS image classification dataset (an Image and a
    ClassLabel feature), made long-tailed with `ratio` and `profile`, e.g.
    `"tfds:fashion_mnist"`; `"prepared:<path>"` a file of `launch.prepare`;
    `"folder:<path>"` a folder of images per class (`folder.py`).
    """
    return [*_PROFILED, *_NATURAL, *official.NUM_CLASSES, "test", *PATTERNS]


def _source(name, data_dir, expected_examples):
    if name in official.NUM_CLASSES:
        return official.make_source(name, data_dir, expected_examples)
    if expected_examples is not None:
        raise ValueError(
            "Invalid value for argument `expected_examples`: only the official "
            f"TFRecord datasets {list(official.NUM_CLASSES)} take it; dataset "
            f"{name!r} knows its sizes. Received: "
            f"expected_examples={expected_examples!r}"
        )
    if name in _PROFILED:
        return tfds_source.make_source(_PROFILED[name], data_dir)
    if name in _NATURAL:
        return tfds_source.make_source(
            data_dir=data_dir, long_tail=False, **_NATURAL[name]
        )
    if name == "test":
        return synthetic.make_source()
    if name.startswith(prepared.PREFIX):
        return prepared.make_source(name[len(prepared.PREFIX) :])
    return tfds_source.make_source(name[len(TFDS_PREFIX) :], data_dir)


def _check_args(name, split, ratio, profile, seed):
    known = isinstance(name, str) and (
        name in names()[: -len(PATTERNS)]
        or any(
            name.startswith(prefix) and len(name) > len(prefix)
            for prefix in _PREFIXES
        )
    )
    if not known:
        raise ValueError(
            f"Invalid value for argument `name`. Expected one of {names()}: "
            "tfds:<name> for a TFDS image classification dataset, "
            "prepared:<path> for a file of `launch.prepare`, folder:<path> "
            f"for a folder of images per class. Received: name={name!r}"
        )
    if split not in SPLITS:
        raise ValueError(
            f"Invalid value for argument `split`. Expected one of {SPLITS}. "
            f"Received: split={split!r}"
        )
    priors_lib.check_ratio(ratio)
    if profile not in selection.PROFILES:
        raise ValueError(
            "Invalid value for argument `profile`. Expected one of "
            f"{selection.PROFILES}. Received: profile={profile!r}"
        )
    if not isinstance(seed, numbers.Integral) or seed < 0:
        raise ValueError(
            "Invalid value for argument `seed`. Expected an integer >= 0. "
            f"Received: seed={seed!r}"
        )


def check_labels(labels, num_classes: int, name: str, split: str) -> None:
    """Raises a ValueError naming the dataset and split for a bad label."""
    labels = np.asarray(labels)
    bad = (labels < 0) | (labels >= num_classes)
    if np.any(bad):
        values = np.unique(labels[bad]).tolist()
        raise ValueError(
            f"Invalid labels in split {split!r} of dataset {name!r}: expected "
            f"class ids in [0, {num_classes}). Found {int(bad.sum())} out of "
            f"range, with values {values[:20]}"
            f"{' ...' if len(values) > 20 else ''}."
        )


def load(
    name,
    split,
    data_dir=None,
    *,
    ratio=DEFAULT_RATIO,
    profile=DEFAULT_PROFILE,
    holdout_fraction=0.0,
    seed=0,
    expected_examples=None,
    **folder_options,
):
    """Loads one split of a long-tailed dataset.

    Args:
        name: one of `names()`: a name, `"tfds:<name>"`, `"prepared:<path>"`
            or `"folder:<path>"`.
        split: `"train"`, `"test"` or `"holdout"`.
        data_dir: TFDS data_dir (None: `TFDS_DATA_DIR` or TFDS's default), or
            the folder of the official TFRecords for `cifar10-lt` /
            `cifar100-lt`.
        ratio: imbalance ratio `n_max / n_min` of the long-tail profile,
            >= 1. Only for datasets made long-tailed (`*_lt` from TFDS,
            `tfds:<name>`); the others are long-tailed already.
        profile: `"exp"` or `"step"`.
        holdout_fraction: fraction of each class's training images set aside
            as the holdout split, in [0, 1).
        seed: 0 keeps the first images of each class in TFDS's canonical
            train order; other seeds keep the first of a seeded permutation.
            It also picks the holdout. See `selection.py`.
        expected_examples: for the official TFRecords (`cifar10-lt`,
            `cifar100-lt`) only: None to require the official record counts
            (train 12,406 / 10,847, test 10,000), or a dict from `"train"`
            and/or `"test"` to the record count of a file of another size.
        **folder_options: for `"folder:<path>"` only (see `folder.py`):
            `image_size` (None, or H or (H, W) to resize every image to),
            `skip_bad_images` (False refuses unreadable files, naming them;
            True leaves them out, listed in `info.skipped_images`),
            `augment` ("auto", "cifar" or "imagenet": the recipe) and
            `index_cache` (a JSON file for the checked file index).

    Returns:
        `(dataset, info)`: an unbatched, unshuffled `tf.data.Dataset` of
        `(uint8 image [H, W, C], int64 label)` in a deterministic order, and a
        `DatasetInfo`.

    Raises:
        ValueError: for a bad argument; for a label outside
            `[0, num_classes)` in the train split or in the split returned,
            naming the dataset, the split and the values; for a damaged
            official TFRecord or prior file.

    Example:

    >>> ds, info = la_keras.datasets.load("test", "train")
    >>> info.num_classes, int(info.train_counts.sum())
    (10, 46)
    """
    _check_args(name, split, ratio, profile, seed)
    unknown = sorted(set(folder_options) - set(FOLDER_OPTIONS))
    if unknown:
        raise TypeError(f"load() got unexpected keyword arguments {unknown}")
    if name.startswith(folder.PREFIX):
        if expected_examples is not None:
            raise ValueError(
                "Invalid value for argument `expected_examples`: only the "
                f"official TFRecord datasets take it. Received: "
                f"expected_examples={expected_examples!r}"
            )
        return folder.load(
            name,
            split,
            ratio=ratio,
            profile=profile,
            holdout_fraction=holdout_fraction,
            seed=seed,
            **folder_options,
        )
    given = {k: v for k, v in folder_options.items() if v != FOLDER_OPTIONS[k]}
    if given:
        raise ValueError(
            f"Invalid arguments {sorted(given)} for dataset {name!r}: only "
            "folder:<path> datasets take image_size, skip_bad_images, "
            f"augment and index_cache. Received: {given}"
        )
    holdout_fraction = selection.check_holdout_fraction(holdout_fraction)
    source = _source(name, data_dir, expected_examples)
    if name.startswith(prepared.PREFIX):
        path = name[len(prepared.PREFIX) :]
        prepared.check_holdout_fraction(
            prepared.read_metadata(path), path, holdout_fraction
        )
    if not source.long_tail and (
        ratio != DEFAULT_RATIO or profile != DEFAULT_PROFILE
    ):
        raise ValueError(
            f"Invalid value for argument `ratio` / `profile`: dataset {name!r} "
            "is long-tailed already and takes no profile. Leave them at "
            f"ratio={DEFAULT_RATIO}, profile={DEFAULT_PROFILE!r}. Received: "
            f"ratio={ratio}, profile={profile!r}"
        )
    labels = source.train_labels()
    num_classes = source.num_classes
    check_labels(labels, num_classes, name, "train")
    counts = None
    if source.long_tail:
        available = np.bincount(labels, minlength=num_classes)
        counts = selection.profile_counts(available, ratio, profile)
    train_pos, holdout_pos = selection.select(
        labels, num_classes, counts, holdout_fraction, seed
    )
    train_counts = np.bincount(labels[train_pos], minlength=num_classes)
    if source.priors is not None and holdout_fraction == 0.0:
        priors = source.priors
    else:
        priors = priors_lib.from_counts(train_counts)

    num_examples = {"train": int(len(train_pos))}
    num_examples["test"] = int(source.other_sizes["test"]())
    if holdout_fraction > 0.0:
        num_examples["holdout"] = int(len(holdout_pos))
    elif "holdout" in source.other_splits:
        num_examples["holdout"] = int(source.other_sizes["holdout"]())
    elif split == "holdout":
        raise ValueError(
            f"Invalid value for argument `holdout_fraction`: dataset {name!r} "
            "has no holdout split of its own, so split='holdout' needs a "
            "slice of the train split. Pass holdout_fraction > 0, e.g. 0.1. "
            f"Received: holdout_fraction={holdout_fraction}"
        )

    info = DatasetInfo(
        name=name,
        num_classes=num_classes,
        class_names=source.class_names,
        train_counts=train_counts,
        priors=priors,
        image_shape=source.image_shape,
        num_examples=num_examples,
        preprocessing=source.preprocessing,
        resize=source.resize,
        **source.checks,
    )
    if split == "train":
        everything = len(train_pos) == len(labels)
        dataset = source.read_train(None if everything else train_pos)
    elif split == "holdout" and holdout_fraction > 0.0:
        dataset = source.read_train(holdout_pos)
    else:
        check_labels(source.other_labels[split](), num_classes, name, split)
        dataset = source.other_splits[split]()
    return dataset, info
