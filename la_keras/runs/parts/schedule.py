"""`ScheduleOptions`: epochs, the learning-rate schedule and SGD."""

from __future__ import annotations

import dataclasses

from la_keras.runs.parts.option import NONNEGATIVE
from la_keras.runs.parts.option import at_least
from la_keras.runs.parts.option import option


@dataclasses.dataclass(frozen=True)
class ScheduleOptions:
    """Epochs, the learning-rate schedule and SGD."""

    epochs: int | None = option(
        None,
        (
            "Training epochs (default: the official count for cifar10(-)lt / "
            "cifar100(-)lt, 2 for test, 200 for any other dataset)."
        ),
        check=at_least(1, optional=True),
    )
    extend: bool = option(
        False,
        (
            "Resume a run in --model_dir with a larger --epochs: allowed when "
            "the learning rate up to its old end stays the same (the same "
            "schedule flags, or more --lr_decay_epochs from the old end on)."
        ),
    )
    base_learning_rate: float = option(
        0.1,
        "Learning rate after warm-up.",
        check=NONNEGATIVE,
    )
    warmup_epochs: float | None = option(
        None,
        (
            "Epochs of linear warm-up. Without this and --lr_decay_epochs: the "
            "official schedule of the dataset (cifar10(-)lt, cifar100(-)lt), "
            "else the official CIFAR-10-LT schedule scaled to --epochs."
        ),
        check=at_least(0, optional=True, finite=True),
    )
    lr_decay_epochs: tuple | None = option(
        None,
        "Epochs where the learning rate drops (default: official).",
        kind="list",
    )
    lr_decay_multipliers: tuple | None = option(
        None,
        (
            "Multipliers of the base learning rate from each lr_decay_epochs "
            "entry."
        ),
        kind="list",
    )
    lr_schedule: str = option(
        "auto",
        (
            "step: the official warm-up and steps "
            "(--warmup_epochs, --lr_decay_epochs); cosine: cosine decay from "
            "--base_learning_rate to 0 over the run. auto: cosine with "
            "--pretrained / --init_from unless a step flag is given, else step."
        ),
        choices=("auto", "step", "cosine"),
    )
    momentum: float = option(0.9, "SGD momentum.", check=NONNEGATIVE)
    nesterov: bool = option(True, "Nesterov momentum.")
