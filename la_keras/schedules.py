"""The official release's learning-rate schedule: linear warm-up, then steps.

`WarmupStepSchedule` reproduces `logit_adjustment/utils.py`'s
`LearningRateSchedule` exactly and is a serializable Keras
`LearningRateSchedule`:

```python
lr_epoch = step / steps_per_epoch
lr = base * mult_0 * lr_epoch / start_0           # linear warm-up
for mult, start in schedule:                        # later entries win
    lr = base * mult if lr_epoch >= start else lr
```

The first `(mult, start)` entry ends the warm-up: with the official
`(1.0, 20)` the rate climbs linearly from 0 to `base` over 20 epochs and
stays at `base` until the next entry.
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

# (multiplier, start epoch) lists and epochs of the official release.
OFFICIAL_SCHEDULES = {
    "cifar10-lt": {
        "epochs": 1241,
        "schedule": ((1.0, 20), (0.1, 604), (0.01, 926), (0.001, 1128)),
    },
    "cifar100-lt": {
        "epochs": 1419,
        "schedule": ((1.0, 22), (0.1, 691), (0.01, 1059), (0.001, 1290)),
    },
}

# Datasets that train with an official schedule: the official TFRecord sets
# and their TFDS-derived twins (`cifar10_lt` is `cifar10-lt` built from TFDS).
_OFFICIAL_ALIASES = {
    "cifar10-lt": "cifar10-lt",
    "cifar10_lt": "cifar10-lt",
    "cifar100-lt": "cifar100-lt",
    "cifar100_lt": "cifar100-lt",
}
# The official release's `test` dataset: 2 epochs, warm-up to epoch 2.
TEST_SCHEDULE = {"epochs": 2, "schedule": ((1.0, 2.0),)}
# Epochs of a dataset without an official schedule, when none is given.
DEFAULT_EPOCHS = 200


def scale_schedule(schedule, from_epochs: float, to_epochs: float):
    """`schedule` with every start epoch scaled by `to_epochs / from_epochs`.

    Example: the official CIFAR-10-LT schedule (1241 epochs) scaled to 200
    epochs warms up for 3.2 epochs and decays at 97.3, 149.2 and 181.8.
    """
    factor = float(to_epochs) / float(from_epochs)
    return _check_schedule(
        tuple((float(m), float(e) * factor) for m, e in schedule)
    )


def default_schedule(dataset: str, epochs: int | None = None) -> dict:
    """`{"epochs", "schedule"}` of a run that passes no schedule flag.

    - `cifar10-lt` / `cifar10_lt` and `cifar100-lt` / `cifar100_lt`: the
      official schedule (`OFFICIAL_SCHEDULES`); with another `epochs`, the
      official schedule scaled to it.
    - `test`: the official release's 2 epochs with warm-up to epoch 2.
    - any other dataset: `DEFAULT_EPOCHS` (or `epochs`) with the official
      CIFAR-10-LT schedule scaled to them.
    """
    if dataset == "test":
        base = TEST_SCHEDULE
    else:
        base = OFFICIAL_SCHEDULES[_OFFICIAL_ALIASES.get(dataset, "cifar10-lt")]
        if dataset not in _OFFICIAL_ALIASES and epochs is None:
            epochs = DEFAULT_EPOCHS
    if epochs is None or int(epochs) == base["epochs"]:
        return {
            "epochs": base["epochs"],
            "schedule": _check_schedule(base["schedule"]),
        }
    return {
        "epochs": int(epochs),
        "schedule": scale_schedule(base["schedule"], base["epochs"], epochs),
    }


def parse_schedule(
    warmup_epochs: float,
    decay_epochs: Sequence[float],
    decay_multipliers: Sequence[float],
) -> tuple[tuple[float, float], ...]:
    """Builds `((1.0, warmup), (mult, epoch), ...)` from flag-style lists.

    Raises:
        ValueError: if the lists differ in length, the epochs do not
            increase or a multiplier is negative.
    """
    decay_epochs = [float(e) for e in decay_epochs]
    decay_multipliers = [float(m) for m in decay_multipliers]
    if len(decay_epochs) != len(decay_multipliers):
        raise ValueError(
            "Invalid learning-rate schedule: `lr_decay_epochs` and "
            "`lr_decay_multipliers` need the same length. Received: "
            f"lr_decay_epochs={decay_epochs}, "
            f"lr_decay_multipliers={decay_multipliers}"
        )
    return _check_schedule(
        ((1.0, float(warmup_epochs)),)
        + tuple(zip(decay_multipliers, decay_epochs, strict=True))
    )


def _check_schedule(schedule):
    try:
        pairs = tuple((float(m), float(e)) for m, e in schedule)
    except (TypeError, ValueError) as e:
        raise ValueError(
            "Invalid value for argument `schedule`. Expected a sequence of "
            f"(multiplier, start_epoch) pairs. Received: schedule={schedule!r}"
        ) from e
    if not pairs:
        raise ValueError(
            "Invalid value for argument `schedule`. Expected at least one "
            "(multiplier, start_epoch) pair; the first ends the warm-up. "
            f"Received: schedule={schedule!r}"
        )
    epochs = [e for _, e in pairs]
    if any(e < 0 for e in epochs) or any(
        b <= a for a, b in zip(epochs, epochs[1:], strict=False)
    ):
        raise ValueError(
            "Invalid value for argument `schedule`: start epochs must be >= 0 "
            f"and strictly increasing. Received: schedule={schedule!r}"
        )
    if any(m < 0 for m, _ in pairs):
        raise ValueError(
            "Invalid value for argument `schedule`: multipliers must be >= 0. "
            f"Received: schedule={schedule!r}"
        )
    return pairs


@keras.saving.register_keras_serializable(package="la_keras")
class WarmupStepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up followed by step decay, per epoch (official release).

    Formula:

    ```python
    lr_epoch = step / steps_per_epoch
    lr = base_learning_rate * schedule[0][0] * lr_epoch / schedule[0][1]
    for mult, start in schedule:
        lr = where(lr_epoch >= start, base_learning_rate * mult, lr)
    ```

    Args:
        base_learning_rate: the rate after warm-up (official: 0.1).
        steps_per_epoch: optimizer steps per epoch, `int(num_train / batch)`.
        schedule: `(multiplier, start_epoch)` pairs with increasing epochs;
            the first one ends the linear warm-up. A warm-up epoch of 0
            means no warm-up.

    Example:

    ```python
    lr = WarmupStepSchedule(0.1, 96, [(1.0, 20), (0.1, 604)])
    float(lr(96 * 10))  # 0.05, half-way through the warm-up
    ```
    """

    def __init__(self, base_learning_rate, steps_per_epoch, schedule):
        super().__init__()
        base_learning_rate = float(base_learning_rate)
        if not base_learning_rate >= 0:
            raise ValueError(
                "Invalid value for argument `base_learning_rate`. Expected a "
                f"float >= 0. Received: base_learning_rate={base_learning_rate}"
            )
        if int(steps_per_epoch) < 1:
            raise ValueError(
                "Invalid value for argument `steps_per_epoch`. Expected an "
                f"integer >= 1. Received: steps_per_epoch={steps_per_epoch}"
            )
        self.base_learning_rate = base_learning_rate
        self.steps_per_epoch = int(steps_per_epoch)
        self.schedule = _check_schedule(schedule)

    def __call__(self, step):
        lr_epoch = ops.cast(step, "float32") / float(self.steps_per_epoch)
        warmup_mult, warmup_end = self.schedule[0]
        base = self.base_learning_rate
        if warmup_end > 0:
            lr = base * warmup_mult * lr_epoch / warmup_end
        else:
            lr = ops.zeros_like(lr_epoch)
        for mult, start in self.schedule:
            lr = ops.where(lr_epoch >= start, base * mult, lr)
        return lr

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "schedule": [list(pair) for pair in self.schedule],
        }
