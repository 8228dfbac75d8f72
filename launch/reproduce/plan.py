"""What launch.reproduce will train, and each training's progress and ETA.

`plan_text` states the plan before anything starts: the trainings (those
finished earlier are skipped), their epochs and the images they will see.
`TrainingProgress` follows one launch.train subprocess through the lines
its progress prints (`step S/T - loss: L - images/s: R - ETA: H:MM:SS`,
`la_keras.training.Progress` on a pipe): one Keras progress bar per
training on a terminal, and, once the steps after the first (compiling)
chunk are timed, the training's and the whole plan's remaining time,
then again every `line_interval` seconds.
"""

from __future__ import annotations

import re
import sys
import time
import typing

from absl import logging

from la_keras.training.progress import hms
from la_keras.training.progress import is_terminal

_STEP_LINE = re.compile(
    r"^step (\d+)/(\d+)(?: - loss: ([-+\w.]+))?"
    r"(?: - images/s: ([\d.]+))?(?: - ETA: ([\d:]+))?"
)


class Training(typing.NamedTuple):
    """One training of the plan: its name, epochs and training images."""

    label: str
    epochs: int
    examples: int | None
    finished: bool

    @property
    def images(self) -> int | None:
        return None if self.examples is None else self.epochs * self.examples


def plan_text(trainings: list[Training]) -> str:
    """The plan in one paragraph: trainings to run, epochs, images."""
    todo = [t for t in trainings if not t.finished]
    done = len(trainings) - len(todo)
    text = (
        f"Plan: {len(trainings)} training(s), {len(todo)} to run"
        + (f" ({done} finished earlier, skipped)" if done else "")
        + "."
    )
    if not todo:
        return text
    epochs = sorted({t.epochs for t in todo})
    text += f" {' / '.join(str(e) for e in epochs)} epochs each"
    images = [t.images for t in todo]
    if None not in images:
        text += f", {sum(images):,} training images in all"
    lines = [text + ":"]
    for t in todo:
        size = "?" if t.examples is None else f"{t.examples:,}"
        lines.append(f"  {t.label}: {t.epochs} epochs × {size} images")
    return "\n".join(lines)


class TrainingProgress:
    """The progress of one training, from its subprocess's output lines.

    The remaining time is measured here, from the steps between the lines
    that follow the first chunk (which also compiles the step, so its rate
    says little about the rest): the first estimate comes with the second
    line after that chunk, then one every `line_interval` seconds.

    Args:
        label: the training, e.g. "cifar10_lt seed 0 la_loss".
        batch_size: its global batch (images per step).
        images_after: training images of the plan's trainings still to run
            after this one (for the whole plan's remaining time), or None.
        stream: where to draw (default `sys.stdout`); a Keras `Progbar` on
            a terminal, else absl log lines.
        line_interval: seconds between log lines off a terminal.
        clock: the time in seconds (a test's fake clock).
    """

    def __init__(
        self,
        label: str,
        batch_size: int,
        images_after: int | None = None,
        stream=None,
        line_interval: float = 300.0,
        clock=time.time,
    ):
        self.label = label
        self.batch_size = int(batch_size)
        self.images_after = images_after
        self.line_interval = float(line_interval)
        self._stream = stream or sys.stdout
        self._clock = clock
        self._bar = None
        self._origin = None  # (time, step) of the first line after a chunk
        self._last_status = None

    def feed(self, line: str) -> bool:
        """Reads one output line of the training; True if it was progress."""
        match = _STEP_LINE.match(line.strip())
        if not match:
            return False
        step, total = int(match.group(1)), int(match.group(2))
        loss, rate = match.group(3), match.group(4)
        rate = float(rate) if rate else None
        now = self._clock()
        if self._stream is sys.stdout and is_terminal(self._stream):
            self._draw(step, total, loss, rate)
        if step == 0 or step >= total:
            return True
        if self._origin is None:
            self._origin = (now, step)
            return True
        start, first_step = self._origin
        if step <= first_step or now <= start:
            return True
        seconds_per_step = (now - start) / (step - first_step)
        if (
            self._last_status is None
            or now - self._last_status >= self.line_interval
        ):
            self._last_status = now
            text = self.status(step, total, seconds_per_step)
            if self._bar is not None:
                self._stream.write("\n" + text + "\n")
            else:
                logging.info("%s", text)
        return True

    def status(self, step: int, total: int, seconds_per_step: float) -> str:
        """`label: step S/T, R images/s, about H:MM:SS left (...)`."""
        rate = self.batch_size / seconds_per_step
        left = (total - step) * seconds_per_step
        text = (
            f"{self.label}: step {step}/{total}, {rate:.1f} images/s, about "
            f"{hms(left)} left"
        )
        if self.images_after:
            text += (
                f"; the trainings after it, about "
                f"{hms(self.images_after / rate)} at this rate"
            )
        return text

    def _draw(self, step, total, loss, rate) -> None:
        import keras

        if self._bar is None:
            self._stream.write(f"{self.label}\n")
            self._bar = keras.utils.Progbar(
                total, stateful_metrics=["loss", "images/s"], unit_name="step"
            )
        values = []
        if loss is not None:
            values.append(("loss", float(loss)))
        if rate:
            values.append(("images/s", rate))
        self._bar.update(step, values, finalize=step >= total)

    def finish(self) -> None:
        if self._bar is not None:
            self._stream.write("\n")
            self._stream.flush()
