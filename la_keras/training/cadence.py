"""How often `TrainingLoop` saves and writes: by the clock, in batches.

An official CIFAR epoch lasts half a second on an accelerator, so the loop
must not wait for the device, write a file or log a line every epoch.
`Interval` says when a time-based cadence is due; `Records` keeps what the
loop reports per chunk and per epoch (losses, train accuracy, learning
rate) as the backend's values, unread, and converts and writes them in
one batch when asked: every record reaches TensorBoard, at most every few
seconds.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from absl import logging

from la_keras.training.progress import hms


class Interval:
    """Due once `seconds` have passed since it was last `reset`.

    Args:
        seconds: the interval; 0 makes it always due.
        clock: returns the time in seconds (`time.monotonic`; tests pass
            a fake one).
    """

    def __init__(self, seconds: float, clock: Callable[[], float] = None):
        if not (math.isfinite(seconds) and seconds >= 0):
            raise ValueError(
                "Invalid value for argument `seconds`. Expected a finite "
                f"number >= 0. Received: seconds={seconds}"
            )
        self.seconds = float(seconds)
        self.clock = clock or time.monotonic
        self._last = self.clock()

    def due(self) -> bool:
        return self.clock() - self._last >= self.seconds

    def reset(self) -> None:
        self._last = self.clock()


class Records:
    """The loop's per-chunk and per-epoch figures, written in batches.

    Values may be backend tensors still being computed: they are read
    (`float`) only in `write`, so recording one makes the host wait for
    nothing.

    Args:
        summaries: a `Summaries` writer, or None.
        epochs: the run's epochs (for the log lines).
        total_steps: the run's last step (for the ETA).
        batch_size: global batch size (for the ETA), or None.
    """

    def __init__(self, summaries, epochs: int, total_steps: int, batch_size):
        self.summaries = summaries
        self.epochs = int(epochs)
        self.total_steps = int(total_steps)
        self.batch_size = batch_size
        self._scalars = []  # (step, {name: value})
        self._epochs = []  # (epoch, step, loss sum, steps, accuracy, rate)

    def __len__(self) -> int:
        return len(self._scalars) + len(self._epochs)

    def batch_loss(self, step: int, mean_loss: float) -> None:
        """A chunk's mean loss (already read: it was checked), at `step`."""
        if self.summaries is not None and self.summaries.train is not None:
            self._scalars.append((int(step), {"batch loss": mean_loss}))

    def epoch(self, epoch, step, loss_sum, steps, accuracy, learning_rate,
              images_per_second=0.0) -> None:  # fmt: skip
        """The end of `epoch` at `step`: its summed loss over `steps` steps,
        train accuracy and learning rate, as the backend has them."""
        if self.summaries is not None and self.summaries.train is not None:
            values = {"accuracy": accuracy, "learning rate": learning_rate}
            self._scalars.append((int(step), values))
        if logging.level_info():
            self._epochs.append(
                (
                    epoch,
                    int(step),
                    loss_sum,
                    max(int(steps), 1),
                    accuracy,
                    images_per_second,
                )  # fmt: skip
            )

    def write(self) -> None:
        """Reads every record, writes the scalars (one flush) and the epoch
        log lines; then forgets them."""
        scalars, self._scalars = self._scalars, []
        epochs, self._epochs = self._epochs, []
        if scalars:
            writer = self.summaries.train
            for step, values in scalars:
                for name, value in values.items():
                    if value is not None:
                        writer.scalar(name, float(value), step=step)
            writer.flush()
        for epoch, step, loss_sum, steps, accuracy, rate in epochs:
            eta = ""
            if rate > 0 and self.batch_size:
                seconds = (self.total_steps - step) * self.batch_size / rate
                eta = f"  {rate:.1f} images/s  ETA {hms(seconds)}"
            logging.info(
                "epoch %d/%d step %d: loss %.4f  train acc %.4f%s",
                epoch + 1, self.epochs, step, float(loss_sum) / steps,
                float(accuracy), eta,
            )  # fmt: skip
