"""`TrainingLoop`: the epoch loop, independent of the backend's step.

The loop owns what every training needs around the step: epochs split in
chunks of steps, the checkpoint cadence, resuming mid-epoch, stopping on a
NaN loss, per-epoch loss hooks (LDAM's deferred re-weighting), a stop
request (preemption), the progress bar and the TensorBoard scalars. The
step itself is a *step runner*: any object with

- `step` (int): the global step (`optimizer.iterations`);
- `train_steps(iterator, num_steps) -> float`: runs `num_steps` steps and
  returns the sum of their losses (NaN or inf if training diverged);
- `train_accuracy`: a Keras metric of the steps since its last reset;
- `learning_rate` (float): the current learning rate;
- `model`: the Keras model it trains; its trainable weights are checked to
  be finite before every checkpoint (see `weights_finite`).

`la_keras.training.Trainer` is the `tf.distribute` step runner,
`la_keras.training.JaxTrainer` the JAX one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator

import numpy as np
from absl import logging

from la_keras.training.progress import Progress
from la_keras.training.progress import Summaries
from la_keras.training.progress import hms


class TrainingDivergedError(RuntimeError):
    """The training loss or the weights became NaN or infinite."""


class NoUsableCheckpointError(RuntimeError):
    """Checkpoints exist, but none of them restores."""


def checkpoint_dir(model_dir: str) -> str:
    """Where a run in `model_dir` keeps its checkpoints (either backend)."""
    return os.path.join(model_dir, "checkpoints")


class TrainingPreempted(RuntimeError):  # noqa: N818 - a signal, not a bug
    """The run was asked to stop; it saved a checkpoint at `step` first."""

    def __init__(self, step: int, checkpoint: str | None):
        super().__init__(
            f"Stopped at step {step} on request (preemption); checkpoint "
            f"{checkpoint}. Rerun the same command to continue."
        )
        self.step = step
        self.checkpoint = checkpoint


def weights_finite(model) -> bool:
    """True when every floating-point trainable weight of `model` is finite.

    One reduction per variable on the variable's own device (the replicas
    of a `tf.distribute` variable are equal after every step) and one
    boolean back to the host: cheap next to writing a checkpoint. Works on
    every Keras backend.
    """
    import keras

    ops = keras.ops
    checks = [
        ops.all(ops.isfinite(variable))
        for variable in model.trainable_variables
        if keras.backend.is_float_dtype(variable.dtype)
    ]
    if not checks:
        return True
    return bool(ops.convert_to_numpy(ops.all(ops.stack(checks))))


def epoch_seed(seed: int, epoch: int) -> int:
    """The random seed of epoch `epoch`'s input pipeline, from the run seed.

    Setting it right before building the epoch's dataset makes its
    shuffling and augmentation a function of `(seed, epoch)` only, so a
    run resumed in a new process sees the same data order as an
    uninterrupted one.
    """
    mixed = np.random.SeedSequence([int(seed), int(epoch)]).generate_state(1)
    return int(mixed[0] % (2**31 - 1))


class TrainingLoop:
    """Trains a step runner for `epochs` epochs, resumable at any step.

    Args:
        runner: the step runner (see the module docstring).
        train_data: `train_data(epoch, skip)` returns an iterator over the
            epoch's batches with the first `skip` batches skipped.
        steps_per_epoch: steps of one epoch.
        epochs: epochs of the whole run.
        save: `save(step, epoch)` writes a checkpoint at `step`, with
            `epoch` complete epochs; returns its path.
        checkpoint_every_steps: also save every N steps (0: per epoch only).
        max_chunk_steps: at most this many steps per `train_steps` call
            (how often a stop request or a NaN is noticed); 0: no bound.
        epoch_hooks: objects with `on_epoch_begin(epoch)` (called before
            every epoch, also the first one after a resume).
        on_epoch_end: `on_epoch_end(epoch, step)` after every
            `eval_every_epochs`-th epoch but the last (evaluation).
        eval_every_epochs: see `on_epoch_end`.
        stop_requested: returns True when the run must save and stop
            (preemption); checked after every chunk.
        progress: a `Progress` bar, or None.
        summaries: a `Summaries` writer, or None.
    """

    def __init__(
        self,
        runner,
        train_data: Callable[[int, int], Iterator],
        steps_per_epoch: int,
        epochs: int,
        save: Callable[[int, int], str],
        *,
        checkpoint_every_steps: int = 0,
        max_chunk_steps: int = 0,
        epoch_hooks: Iterable = (),
        on_epoch_end: Callable[[int, int], None] | None = None,
        eval_every_epochs: int = 1,
        stop_requested: Callable[[], bool] | None = None,
        progress: Progress | None = None,
        summaries: Summaries | None = None,
    ):
        self.runner = runner
        self.train_data = train_data
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = int(epochs)
        self.save = save
        self.checkpoint_every_steps = int(checkpoint_every_steps)
        self.max_chunk_steps = int(max_chunk_steps)
        self.epoch_hooks = [
            h for h in epoch_hooks if hasattr(h, "on_epoch_begin")
        ]
        self.on_epoch_end = on_epoch_end
        self.eval_every_epochs = max(1, int(eval_every_epochs))
        self.stop_requested = stop_requested or (lambda: False)
        self.progress = progress
        self.summaries = summaries
        self.last_checkpoint = None
        self._last_saved_step = None

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    def _chunk(self, step: int, in_epoch: int) -> int:
        chunk = self.steps_per_epoch - in_epoch
        every = self.checkpoint_every_steps
        if every:
            chunk = min(chunk, every - step % every)
        if self.max_chunk_steps:
            chunk = min(chunk, self.max_chunk_steps)
        return chunk

    def _save(self, step: int, epoch: int) -> None:
        """Saves a checkpoint of `step`, unless the weights are not finite.

        A step can return a finite loss and leave NaN or inf weights (the
        loss is computed before the update): such a state is never saved,
        so that the last checkpoint stays a good one.
        """
        if not weights_finite(self.runner.model):
            raise TrainingDivergedError(
                f"The weights became NaN or inf by step {step}, while the "
                "training loss was still finite; stopped without saving "
                "them. The last good "
                f"checkpoint ({self.last_checkpoint or 'none'}) is kept. "
                "Lower --base_learning_rate or check the data."
            )
        self.last_checkpoint = self.save(step, epoch)
        self._last_saved_step = step

    def run(self) -> int:
        """Trains from the runner's current step to the end; returns it.

        Raises:
            TrainingDivergedError: the loss or the weights became NaN or
                infinite; nothing is saved after that, the last good
                checkpoint is kept.
            TrainingPreempted: `stop_requested()` became true; a checkpoint
                of the current step was saved first.
        """
        step = self.runner.step
        if self.progress is not None:
            self.progress.start(step)
        while step < self.total_steps:
            step = self._run_epoch(step)
        if self.progress is not None:
            self.progress.finish(step)
        return step

    def _run_epoch(self, step: int) -> int:
        epoch, in_epoch = divmod(step, self.steps_per_epoch)
        for hook in self.epoch_hooks:
            hook.on_epoch_begin(epoch)
        iterator = self.train_data(epoch, in_epoch)
        self.runner.train_accuracy.reset_state()
        first_step, loss_sum = step, 0.0
        while in_epoch < self.steps_per_epoch:
            chunk = self._chunk(step, in_epoch)
            chunk_loss = self.runner.train_steps(iterator, chunk)
            if not math.isfinite(chunk_loss):
                raise TrainingDivergedError(
                    f"Training loss is {chunk_loss} between steps {step} and "
                    f"{step + chunk} (epoch {epoch}); stopped. The last good "
                    f"checkpoint ({self.last_checkpoint or 'none'}) is kept. "
                    "Lower --base_learning_rate or check the data."
                )
            step += chunk
            in_epoch += chunk
            loss_sum += chunk_loss
            if self.progress is not None:
                self.progress.update(step, chunk_loss / chunk)
            if self.summaries is not None:
                self.summaries.write(
                    self.summaries.train,
                    {"batch loss": chunk_loss / chunk},
                    step,
                )
            every = self.checkpoint_every_steps
            if in_epoch < self.steps_per_epoch:
                if every and step % every == 0:
                    self._save(step, epoch)
                if self.stop_requested():
                    self._stop(step, epoch)
        self._save(step, epoch + 1)
        self._end_epoch(epoch, step, loss_sum / max(step - first_step, 1))
        if self.stop_requested() and step < self.total_steps:
            self._stop(step, epoch + 1, saved=True)
        return step

    def _stop(self, step: int, epoch: int, saved: bool = False) -> None:
        if not saved and self._last_saved_step != step:
            self._save(step, epoch)
        raise TrainingPreempted(step, self.last_checkpoint)

    def _end_epoch(self, epoch: int, step: int, mean_loss: float) -> None:
        accuracy = float(self.runner.train_accuracy.result())
        if self.summaries is not None:
            self.summaries.write(
                self.summaries.train,
                {
                    "accuracy": accuracy,
                    "learning rate": self.runner.learning_rate,
                },
                step,
            )
        remaining = self.total_steps - step
        eta = ""
        if self.progress is not None:
            rate = self.progress.images_per_second(step)
            if rate > 0:
                seconds = remaining * self.progress.batch_size / rate
                eta = f"  {rate:.1f} images/s  ETA {hms(seconds)}"
        logging.info(
            "epoch %d/%d step %d: loss %.4f  train acc %.4f%s",
            epoch + 1, self.epochs, step, mean_loss, accuracy, eta,
        )  # fmt: skip
        last = step >= self.total_steps
        if (
            self.on_epoch_end is not None
            and not last
            and (epoch + 1) % self.eval_every_epochs == 0
        ):
            self.on_epoch_end(epoch, step)
