"""Timed `train_steps` calls, as `TrainingLoop` makes them (bench_backends).

`time_steps` gives the images/s of one `train_steps` call of `--steps`
steps, the fastest of `--repeats`, inside one epoch after an untimed
warm-up call (`Steps`).
"""

from __future__ import annotations

import math
import time


class Steps:
    """Timed `train_steps` calls, each one chunk inside one epoch.

    As `TrainingLoop` calls it: `trainer.train_steps(iterator, n)` on the
    iterator of an epoch, `epoch_data(epoch, skip)`, the loss read back to
    the host (which waits for the steps). Every epoch used starts with an
    untimed warm-up call of `warmup` steps (compilation, and the TensorFlow
    pipeline's shuffle buffer filling); each timed call is `steps` steps of
    the current epoch, or of the next one when they do not fit. With
    `compile_steps`, an untimed call of that many steps follows the first
    warm-up: for a step loop compiled once per call length (`JaxTrainer`'s
    `loop="scan"`).
    """

    def __init__(
        self, trainer, epoch_data, steps_per_epoch, args, compile_steps=0
    ):
        needed = args.warmup + compile_steps + args.steps
        if needed > steps_per_epoch:
            raise ValueError(
                f"--warmup={args.warmup} + --steps={args.steps} (the steps "
                f"twice for loop=scan) = {needed} steps do not fit in one "
                f"epoch of {steps_per_epoch} steps."
            )
        self.trainer = trainer
        self.epoch_data = epoch_data
        self.steps_per_epoch = steps_per_epoch
        self.args = args
        self.epoch = -1
        self._next_epoch()
        if compile_steps:
            self._call(compile_steps)

    def _call(self, num_steps):
        loss = self.trainer.train_steps(self._iterator, num_steps)
        self.in_epoch += num_steps
        if not math.isfinite(loss):
            raise RuntimeError(f"The training loss is {loss}.")

    def _next_epoch(self):
        self.epoch += 1
        self.in_epoch = 0
        self._iterator = self.epoch_data(self.epoch, 0)
        self._call(self.args.warmup)

    def timed(self) -> float:
        """Seconds of one `train_steps` call of `steps` steps."""
        if self.in_epoch + self.args.steps > self.steps_per_epoch:
            self._next_epoch()
        start = time.perf_counter()
        self._call(self.args.steps)
        return time.perf_counter() - start


def time_steps(trainer, epoch_data, steps_per_epoch, args, compile_steps=0):
    """images/s of `args.steps` steps, the fastest of `args.repeats`."""
    runner = Steps(trainer, epoch_data, steps_per_epoch, args, compile_steps)
    # The least disturbed by other processes: the fastest repeat.
    seconds = [runner.timed() for _ in range(args.repeats)]
    return {
        "images_per_s": args.steps * args.batch / min(seconds),
        "seconds": seconds,
        "epochs_used": runner.epoch + 1,
    }
