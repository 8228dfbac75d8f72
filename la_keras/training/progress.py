"""What a training shows while it runs: its progress and TensorBoard.

`Progress` draws one Keras `Progbar` per training (step, loss, images/s,
ETA), the bar a Keras user knows from `model.fit`, on a terminal; sent to a
file or a pipe, it writes plain lines instead, at most one every half
minute. `Summaries` writes the TensorBoard scalars (train/ and test/) with
`EventFileWriter`, which needs neither TensorFlow nor the tensorboard
package, so it works on every backend.
"""

from __future__ import annotations

import os
import sys
import time

import keras

from la_keras.training.event_file import EventFileWriter


def hms(seconds: float) -> str:
    """`H:MM:SS` of a duration in seconds."""
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def is_terminal(stream) -> bool:
    """True for a stream that shows redraws in place: a terminal, a notebook.

    (Keras's `Progbar` redraws with `\\r` and colours with ANSI codes
    whenever `posix` is imported, so a log file fills with them.)
    """
    isatty = getattr(stream, "isatty", None)
    return bool(isatty is not None and isatty()) or "ipykernel" in sys.modules


class Progress:
    """The progress of a whole training: step, loss, images/s and ETA.

    On a terminal, one Keras `Progbar` redrawn in place. On any other
    stream (a file, a pipe, a log collector) plain lines without control
    characters, `step S/T - loss: L - images/s: R - ETA: H:MM:SS` (the
    fields of the bar): one when the training starts, then at most one
    every `line_interval` seconds, and one at the end.

    Args:
        total_steps: the run's last step.
        batch_size: global batch size (for images/s).
        verbose: show the progress (False on non-chief workers, in tests).
        interval: seconds between redraws of the bar.
        stream: where to write (default: `sys.stdout` as the training
            starts); the bar is drawn only on `sys.stdout` and a terminal.
        line_interval: seconds between plain lines.
    """

    def __init__(
        self,
        total_steps,
        batch_size,
        verbose=True,
        interval=0.5,
        stream=None,
        line_interval=30.0,
    ):
        self.total_steps = int(total_steps)
        self.batch_size = int(batch_size)
        self.verbose = bool(verbose)
        self.line_interval = float(line_interval)
        self._stream = stream
        self._bar = None
        self._lines = None
        self._interval = interval
        self._start_time = None
        self._start_step = 0
        self._line_step = self._line_time = None
        self._loss = None

    def start(self, step: int) -> None:
        self._start_time, self._start_step = time.time(), int(step)
        if not self.verbose:
            return
        stream = self._stream or sys.stdout
        if stream is sys.stdout and is_terminal(stream):
            self._bar = keras.utils.Progbar(
                self.total_steps,
                stateful_metrics=["loss", "images/s"],
                interval=self._interval,
                unit_name="step",
            )
            self._bar.update(int(step))
        else:
            self._lines = stream
            self._line(int(step))

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
        elif self._lines is not None:
            self._loss = loss
            if time.time() - self._line_time >= self.line_interval:
                self._line(int(step))

    def finish(self, step: int) -> None:
        if self._bar is not None:
            self._bar.update(int(step), finalize=True)
        elif self._lines is not None and self._line_step != int(step):
            self._line(int(step))

    def _line(self, step: int) -> None:
        parts = [f"step {step}/{self.total_steps}"]
        if self._loss is not None:
            parts.append(f"loss: {self._loss:.4f}")
        rate = self.images_per_second(step)
        if rate > 0:
            parts.append(f"images/s: {rate:.1f}")
            remaining = self.total_steps - step
            if remaining > 0:
                eta = remaining * self.batch_size / rate
                parts.append(f"ETA: {hms(eta)}")
        self._lines.write(" - ".join(parts) + "\n")
        self._lines.flush()
        self._line_step, self._line_time = step, time.time()


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
