"""What a training shows while it runs: a progress bar and TensorBoard.

`Progress` draws one Keras `Progbar` per training (step, loss, images/s,
ETA), the bar a Keras user knows from `model.fit`; `Summaries` writes the
TensorBoard scalars (train/ and test/) with `EventFileWriter`, which needs
neither TensorFlow nor the tensorboard package, so it works on every backend.
"""

from __future__ import annotations

import os
import time

import keras

from la_keras.training.event_file import EventFileWriter


def hms(seconds: float) -> str:
    """`H:MM:SS` of a duration in seconds."""
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """One progress bar for a whole training.

    Args:
        total_steps: the run's last step.
        batch_size: global batch size (for images/s).
        verbose: draw the bar (False on non-chief workers, in tests).
        interval: seconds between redraws.
    """

    def __init__(self, total_steps, batch_size, verbose=True, interval=0.5):
        self.total_steps = int(total_steps)
        self.batch_size = int(batch_size)
        self.verbose = bool(verbose)
        self._bar = None
        self._interval = interval
        self._start_time = None
        self._start_step = 0

    def start(self, step: int) -> None:
        self._start_time, self._start_step = time.time(), int(step)
        if self.verbose:
            self._bar = keras.utils.Progbar(
                self.total_steps,
                stateful_metrics=["loss", "images/s"],
                interval=self._interval,
                unit_name="step",
            )
            self._bar.update(int(step))

    def images_per_second(self, step: int) -> float:
        elapsed = time.time() - (self._start_time or time.time())
        done = (int(step) - self._start_step) * self.batch_size
        return done / elapsed if elapsed > 0 else 0.0

    def update(self, step: int, loss: float) -> None:
        if self._bar is not None:
            self._bar.update(
                int(step),
                [("loss", loss), ("images/s", self.images_per_second(step))],
                finalize=False,
            )

    def finish(self, step: int) -> None:
        if self._bar is not None:
            self._bar.update(int(step), finalize=True)


class Summaries:
    """TensorBoard event files under `log_dir/train` and `log_dir/test`.

    With `log_dir=None` (non-chief workers) nothing is written: `train` and
    `test` are then None.
    """

    def __init__(self, log_dir: str | None):
        if log_dir is None:
            self.train = self.test = None
        else:
            self.train = EventFileWriter(os.path.join(log_dir, "train"))
            self.test = EventFileWriter(os.path.join(log_dir, "test"))

    def write(self, writer, values: dict, step: int) -> None:
        """Writes `values` (name to scalar; None values skipped) at `step`."""
        if writer is None:
            return
        for name, value in values.items():
            if value is not None:
                writer.scalar(name, value, step=step)
        writer.flush()
