"""`DatasetInfo`: what a loaded dataset is, for the model and the priors."""

from __future__ import annotations

import dataclasses

import numpy as np

from la_keras.datasets import split_checks
from la_keras.datasets.normalization import PREPROCESSINGS


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """Describes a dataset returned by `la_keras.datasets.load`.

    Args:
        name: the name passed to `load`.
        num_classes: number of classes.
        class_names: one name per class, in label order.
        train_counts: int64 per-class counts of the training split actually
            used (after the long-tail profile and after holdout removal).
        priors: float64 class priors of the training split:
            `la_keras.priors.from_counts(train_counts)`, or the official
            `<name>_base_probs.txt` for the official TFRecords.
        image_shape: `(H, W, C)` of the model input after preprocessing.
        num_examples: number of examples of each available split
            (`"train"`, `"test"` and, when there is one, `"holdout"`).
        preprocessing: `"cifar"` (`x / 255 - 0.5`, pad-and-crop) or
            `"imagenet"` (random resized crop / resize-and-center-crop to 224,
            ImageNet mean and std), at `image_shape`'s size.
        resize: `(H, W)` every raw image is resized to before
            preprocessing (a folder dataset given `image_size`; the served
            model resizes its inputs the same way), or None: images are
            used at their own size.
        skipped_images: paths of the unreadable files left out
            (`skip_bad_images=True` of a folder dataset).
        test_counts: int64 per-class counts of the test split, or None
            where they are not known without reading it (TFDS). See
            `split_checks.py`.
        test_duplicates: how many test images are byte-identical to a
            training (or holdout) image, or None: not checked.
        test_duplicate_examples: the first of those, as `(test image,
            training image)` name pairs.
    """

    name: str
    num_classes: int
    class_names: list[str]
    train_counts: np.ndarray
    priors: np.ndarray
    image_shape: tuple
    num_examples: dict
    preprocessing: str
    resize: tuple | None = None
    skipped_images: tuple = ()
    test_counts: np.ndarray | None = None
    test_duplicates: int | None = None
    test_duplicate_examples: tuple = ()

    def __post_init__(self):
        counts = np.asarray(self.train_counts, dtype=np.int64)
        priors = np.asarray(self.priors, dtype=np.float64)
        if counts.shape != (self.num_classes,) or priors.shape != counts.shape:
            raise ValueError(
                "Invalid DatasetInfo: `train_counts` and `priors` must have "
                f"one entry per class ({self.num_classes}). Received shapes "
                f"{counts.shape} and {priors.shape}."
            )
        if len(self.class_names) != self.num_classes:
            raise ValueError(
                "Invalid DatasetInfo: expected one class name per class "
                f"({self.num_classes}). Received {len(self.class_names)} names."
            )
        if self.preprocessing not in PREPROCESSINGS:
            raise ValueError(
                "Invalid value for argument `preprocessing`. Expected one of "
                f"{PREPROCESSINGS}. Received: preprocessing={self.preprocessing!r}"
            )
        object.__setattr__(self, "train_counts", counts)
        object.__setattr__(self, "priors", priors)
        object.__setattr__(self, "image_shape", tuple(self.image_shape))
        object.__setattr__(self, "class_names", list(self.class_names))
        object.__setattr__(self, "num_examples", dict(self.num_examples))
        if self.resize is not None:
            object.__setattr__(
                self, "resize", tuple(int(v) for v in self.resize)
            )
        object.__setattr__(self, "skipped_images", tuple(self.skipped_images))
        if self.test_counts is not None:
            test_counts = np.asarray(self.test_counts, dtype=np.int64)
            if test_counts.shape != counts.shape:
                raise ValueError(
                    "Invalid DatasetInfo: `test_counts` must have one entry "
                    f"per class ({self.num_classes}). Received shape "
                    f"{test_counts.shape}."
                )
            object.__setattr__(self, "test_counts", test_counts)
        object.__setattr__(
            self,
            "test_duplicate_examples",
            tuple(tuple(pair) for pair in self.test_duplicate_examples),
        )

    def classes_without_test_images(self) -> list[str]:
        """Names of the classes with training images and no test image
        (empty where `test_counts` is unknown)."""
        if self.test_counts is None:
            return []
        missing = split_checks.classes_without_test_images(
            self.train_counts, self.test_counts
        )
        return [self.class_names[c] for c in missing]
