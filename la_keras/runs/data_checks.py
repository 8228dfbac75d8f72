"""Warnings about the test split a run is evaluated on, and their facts.

From what the `DatasetInfo` knows (`la_keras.datasets.split_checks`): the
classes with training images and no test image, and the test images that
are byte-identical to training images. Both are logged when a run starts
and recorded in metrics.json (`reporting.dataset_facts`).
"""

from __future__ import annotations

from absl import logging

# Classes and duplicate pairs named in the log, at most.
NAMED = 5
MISSING_KEY = "classes_without_test_images"
DUPLICATES_KEY = "test_images_identical_to_training"


def facts(info) -> dict:
    """metrics.json's keys, for the checks the dataset could make.

    `classes_without_test_images`: the class names (absent when the test
    counts are unknown); `test_images_identical_to_training`: `{"count",
    "first"}`, the first pairs as "test = training" (absent when not
    checked).
    """
    found = {}
    if info.test_counts is not None:
        found[MISSING_KEY] = info.classes_without_test_images()
    if info.test_duplicates is not None:
        found[DUPLICATES_KEY] = {
            "count": int(info.test_duplicates),
            "first": [f"{a} = {b}" for a, b in info.test_duplicate_examples],
        }
    return found


def _named(items: list, more: int) -> str:
    return ", ".join(items) + (f" and {more} more" if more > 0 else "")


def missing_classes_message(info) -> str | None:
    """The warning naming the classes without test images, or None."""
    missing = info.classes_without_test_images()
    if not missing:
        return None
    label_of = {name: i for i, name in enumerate(info.class_names)}
    named = [
        f"{name} ({int(info.train_counts[label_of[name]])} training images)"
        for name in missing[:NAMED]
    ]
    present = int((info.test_counts > 0).sum())
    some = len(missing) != 1
    return (
        f"{info.name}: {len(missing)} class{'es' if some else ''} ha"
        f"{'ve' if some else 's'} training images and no test image: "
        f"{_named(named, len(missing) - NAMED)}. "
        f"{'Their' if some else 'Its'} test accuracy is unknown: balanced "
        "accuracy and the many/medium/few-shot accuracies are averaged over "
        f"the {present} classes that have test images."
    )


def duplicates_message(info) -> str | None:
    """The warning counting the test images identical to training ones."""
    count = info.test_duplicates
    if not count:
        return None
    first = info.test_duplicate_examples[:1]
    example = "".join(f" (e.g. {a} = {b})" for a, b in first)
    one = count == 1
    return (
        f"{info.name}: {count} test image{'' if one else 's'} "
        f"{'is' if one else 'are'} byte-identical to training images"
        f"{example}; {'its' if one else 'their'} accuracy overstates "
        "generalisation."
    )


def log(info) -> None:
    """Warns once of each problem `facts` records."""
    for message in (missing_classes_message(info), duplicates_message(info)):
        if message:
            logging.warning("%s", message)
