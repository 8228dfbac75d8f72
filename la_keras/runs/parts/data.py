"""`DataOptions`: where the examples come from and how they are read and batched."""

from __future__ import annotations

import dataclasses

from la_keras.runs.parts import checks
from la_keras.runs.parts.option import POSITIVE
from la_keras.runs.parts.option import at_least
from la_keras.runs.parts.option import fraction
from la_keras.runs.parts.option import option


@dataclasses.dataclass(frozen=True)
class DataOptions:
    """Where the examples come from and how they are read and batched."""

    dataset: str = option(
        "cifar10-lt",
        (
            "Dataset to use: one of la_keras.datasets.names() or tfds:<name>. "
            "Mind the one-character difference: cifar10-lt / cifar100-lt (dash) "
            "read the official TFRecords from --data_home; cifar10_lt / "
            "cifar100_lt (underscore) derive the same long-tailed sets from "
            "TFDS cifar10 / cifar100. test is a tiny synthetic smoke set. "
            "prepared:<path> reads a file written by launch.prepare."
        ),
        check=checks.dataset,
    )
    data_home: str = option(
        "logit_adjustment/data",
        (
            "Directory where data files are stored (the official TFRecords and "
            "<dataset>_base_probs.txt of cifar10-lt / cifar100-lt)."
        ),
    )
    data_dir: str | None = option(
        None,
        (
            "TFDS data_dir for the TFDS-backed datasets (default: TFDS_DATA_DIR "
            "or ~/tensorflow_datasets)."
        ),
    )
    ratio: float = option(
        100.0,
        "Imbalance ratio of TFDS-derived sets.",
        check=at_least(1, finite=True),
    )
    profile: str = option("exp", "Long-tail profile.", choices=("exp", "step"))
    holdout_fraction: float | None = option(
        None,
        (
            "Class-stratified fraction of the train split held out to choose "
            "tau (posthoc). Default 0: train on the whole long-tailed set, as "
            "the official release (imagenet_lt tunes on its own validation "
            "split). Opt in with e.g. 0.1 to tune tau on a holdout."
        ),
        check=fraction,
    )
    image_size: str | None = option(
        None,
        (
            "H or H,W pixels. A pretrained backbone (--pretrained, hub:) "
            "resizes its input to it inside the model (default 224, the size of "
            "the ImageNet weights; smaller is faster and less accurate), so "
            "export and serving take the dataset's images. "
            "--dataset=folder:<path>: every image (train and test) is read at "
            "this size; without it, all must share one size."
        ),
        check=checks.image_size,
    )
    skip_bad_images: bool = option(
        False,
        (
            "--dataset=folder:<path>: train without the image files that cannot "
            "be read (empty, not an image, truncated, corrupt); they are "
            "counted and named in the log and metrics.json. Default: refuse "
            "them."
        ),
    )
    augment: str = option(
        "auto",
        (
            "--dataset=folder:<path>: the training "
            "augmentation. cifar: pad, random crop, flip, x/255-0.5; imagenet: "
            "random resized crop, flip, ImageNet mean/std. auto: cifar for "
            "images of at most 64 px a side, imagenet above."
        ),
        choices=("auto", "cifar", "imagenet"),
    )
    crop_padding: int = option(
        2,
        (
            "CIFAR recipe: pixels of zero padding a side before the random crop "
            "to the image size. 2 as the official release (36x36 for CIFAR); 4 "
            "is the LDAM / BBN convention; 0 flips only."
        ),
        check=at_least(0),
    )
    shuffle_buffer: int | None = option(
        None,
        (
            "Training shuffle buffer, reshuffled each epoch. Default: 10,000 "
            "records for the official TFRecords (as the official release), the "
            "whole split for the other CIFAR-recipe datasets, 4,096 for "
            "ImageNet-size images."
        ),
        check=at_least(1, optional=True),
    )
    expected_train_examples: int | None = option(
        None,
        (
            "cifar10-lt / cifar100-lt: records in the train TFRecord when it is "
            "not the official file (default: the official 12,406 / 10,847)."
        ),
        check=at_least(1, optional=True),
    )
    expected_test_examples: int | None = option(
        None,
        (
            "cifar10-lt / cifar100-lt: records in the test TFRecord when it is "
            "not the official file (default: 10,000)."
        ),
        check=at_least(1, optional=True),
    )
    train_batch_size: int = option(128, "Train batch size.", check=POSITIVE)
    test_batch_size: int = option(100, "Test batch size.", check=POSITIVE)
    sampler: str = option(
        "shuffle",
        (
            "Training order: shuffle (each example "
            "once per epoch), or class_balanced (each draw picks a class "
            "uniformly, then one of its examples, as cRT's class-balanced "
            "sampling; the mode defaults to baseline, and a prior-correcting "
            "loss or post-hoc tau is refused: the batches already remove the "
            "prior)."
        ),
        choices=("shuffle", "class_balanced"),
    )
