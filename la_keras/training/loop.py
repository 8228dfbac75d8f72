"""`TrainingLoop`: the epoch loop, independent of the backend's step.

The loop owns what every training needs around the step: epochs split in
chunks of steps, the checkpoint cadence, resuming mid-epoch, stopping on a
NaN loss, per-epoch loss hooks (LDAM's deferred re-weighting), a stop
request (preemption), the progress bar and the TensorBoard scalars. The
step itself is a *step runner*: any object with

- `step` (int): the global step (`optimizer.iterations`);
- `train_steps(iterator, num_steps) -> float`: runs `num_steps` steps and
  returns the sum of their losses (NaN or inf if training diverged);
  optionally `dispatch_steps(iterator, num_steps)`, the same sum as a
  backend scalar returned without waiting for the steps (the loop then
  reads it one chunk later, while the next chunk runs);
- `train_accuracy`: a Keras metric of the steps since its last reset;
- `learning_rate`: the current learning rate, a scalar `float()` reads
  (a backend tensor is read only when the summaries are written);
- `model`: the Keras model it trains; its trainable weights are checked to
  be finite before every checkpoint (see `weights_finite`);
- optionally `any_worker(flag) -> bool`, true on every worker when `flag`
  is true on any (a collective): workers whose clocks differ then agree on
  a time-based checkpoint.

`la_keras.training.Trainer` is the `tf.distribute` step runner,
`la_keras.training.JaxTrainer` the JAX one.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from la_keras.training.cadence import Interval
from la_keras.training.cadence import Records
from la_keras.training.progress import Progress
from la_keras.training.progress import Summaries


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


class TrainingLoop:
    """Trains a step runner for `epochs` epochs, resumable at any step.

    What happens per epoch is kept off the device's path, since an
    official CIFAR epoch lasts half a second on an accelerator:

    - Checkpoints: every `checkpoint_every_steps` steps if set; at an
      epoch's end only once `checkpoint_every_seconds` have passed since
      the last save (0: every epoch); and always at the run's last step,
      before an evaluation (`on_epoch_end`) and on a stop request.
    - The loss of a chunk is read one chunk late, while the next chunk
      runs (with a runner's `dispatch_steps`), and before every save: a
      NaN or inf loss stops the run one chunk later at most, and weights
      are saved only after every loss before them was read finite and the
      weights themselves checked (`weights_finite`).
    - The per-epoch figures (loss, train accuracy, learning rate) and
      each chunk's loss are recorded as the backend has them and written
      in one batch (TensorBoard scalars and the INFO log lines, one per
      epoch, none lost) at most every `log_every_seconds`, and at every
      save, evaluation, stop and the end.
    - From the second epoch a loop runs, the next epoch's iterator is made
      in a thread of its own as an epoch starts (`train_data(epoch + 1,
      0)`, never two calls at once), so that building an input pipeline
      and filling its shuffle buffer overlap the steps; the first epoch of
      a process may still be filling the pipeline's cache. `train_data`
      must give the same batches whichever thread calls it, and must not
      touch process-wide state (see the threads in `la_keras.training`):
      its random draws are a function of `(seed, epoch)` passed to its ops.

    Args:
        runner: the step runner (see the module docstring).
        train_data: `train_data(epoch, skip)` returns an iterator over the
            epoch's batches with the first `skip` batches skipped.
        steps_per_epoch: steps of one epoch.
        epochs: epochs of the whole run.
        save: `save(step, epoch)` writes a checkpoint at `step`, with
            `epoch` complete epochs; returns its path.
        checkpoint_every_steps: also save every N steps (0: never by step).
        checkpoint_every_seconds: save at an epoch's end only when this
            many seconds passed since the last save (0: every epoch).
        log_every_seconds: write the recorded scalars and log lines at
            most this often (0: every epoch).
        max_chunk_steps: at most this many steps per `train_steps` call
            (how often a stop request or a NaN is noticed); 0: no bound.
        epoch_hooks: objects with `on_epoch_begin(epoch)` (called before
            every epoch, also the first one after a resume).
        on_epoch_end: `on_epoch_end(epoch, step)` after every
            `eval_every_epochs`-th epoch but the last (evaluation).
        eval_every_epochs: see `on_epoch_end`; 0: no evaluation before
            the end of the run.
        stop_requested: returns True when the run must save and stop
            (preemption); checked after every chunk.
        progress: a `Progress` bar, or None.
        summaries: a `Summaries` writer, or None.
        clock: the time in seconds for the cadences (`time.monotonic`).
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
        checkpoint_every_seconds: float = 0.0,
        log_every_seconds: float = 0.0,
        max_chunk_steps: int = 0,
        epoch_hooks: Iterable = (),
        on_epoch_end: Callable[[int, int], None] | None = None,
        eval_every_epochs: int = 1,
        stop_requested: Callable[[], bool] | None = None,
        progress: Progress | None = None,
        summaries: Summaries | None = None,
        clock: Callable[[], float] | None = None,
    ):
        self.runner = runner
        self.train_data = train_data
        self.steps_per_epoch = int(steps_per_epoch)
        self.epochs = int(epochs)
        self.save = save
        self.checkpoint_every_steps = int(checkpoint_every_steps)
        self.clock = clock or time.monotonic
        self._checkpoint_due = Interval(checkpoint_every_seconds, self.clock)
        self._log_due = Interval(log_every_seconds, self.clock)
        self.max_chunk_steps = int(max_chunk_steps)
        self.epoch_hooks = [
            h for h in epoch_hooks if hasattr(h, "on_epoch_begin")
        ]
        self.on_epoch_end = on_epoch_end
        self.eval_every_epochs = max(0, int(eval_every_epochs))
        self.stop_requested = stop_requested or (lambda: False)
        self.progress = progress
        self.summaries = summaries
        self.records = Records(
            summaries,
            self.epochs,
            self.total_steps,
            progress.batch_size if progress is not None else None,
        )
        self.last_checkpoint = None
        self._last_saved_step = None
        self._unread = None  # the last chunk's (first step, steps, loss)
        self._ahead = None  # (epoch, future iterator) made one epoch early
        self._maker = None  # the thread that makes it

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

    def _read_loss(self) -> None:
        """Reads the last chunk's loss; stops the run if it is not finite."""
        if self._unread is None:
            return
        first, steps, value = self._unread
        self._unread = None
        loss = float(value)
        if not math.isfinite(loss):
            self._write_records()
            raise TrainingDivergedError(
                f"Training loss is {loss} between steps {first} and "
                f"{first + steps} (epoch {first // self.steps_per_epoch}); "
                "stopped. The last good checkpoint "
                f"({self.last_checkpoint or 'none'}) is kept. "
                "Lower --base_learning_rate or check the data."
            )
        self.records.batch_loss(first + steps, loss / steps)
        if self.progress is not None:
            self.progress.update(first + steps, loss / steps)

    def _save(self, step: int, epoch: int) -> None:
        """Saves a checkpoint of `step`, unless the weights are not finite.

        Every loss up to `step` is read first. A step can return a finite
        loss and leave NaN or inf weights (the loss is computed before the
        update): such a state is never saved, so that the last checkpoint
        stays a good one.
        """
        self._read_loss()
        if not weights_finite(self.runner.model):
            self._write_records()
            raise TrainingDivergedError(
                f"The weights became NaN or inf by step {step}, while the "
                "training loss was still finite; stopped without saving "
                "them. The last good "
                f"checkpoint ({self.last_checkpoint or 'none'}) is kept. "
                "Lower --base_learning_rate or check the data."
            )
        self.last_checkpoint = self.save(step, epoch)
        self._last_saved_step = step
        self._checkpoint_due.reset()
        self._write_records()

    def _write_records(self) -> None:
        self.records.write()
        self._log_due.reset()

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
        self._checkpoint_due.reset()
        self._log_due.reset()
        if self.progress is not None:
            self.progress.start(step)
        first_epoch = step // self.steps_per_epoch
        try:
            while step < self.total_steps:
                step = self._run_epoch(step, first_epoch)
        finally:
            self._drop_ahead()
        self._read_loss()
        self._write_records()
        if self.progress is not None:
            self.progress.finish(step)
        return step

    def _drop_ahead(self) -> None:
        """Waits for an iterator made ahead, unused, and ends its thread."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            ahead[1].exception()  # done; an error there no longer matters
        if self._maker is not None:
            self._maker.shutdown(wait=True)
            self._maker = None

    def _iterator(self, epoch: int, in_epoch: int, first_epoch: int):
        """The epoch's iterator (made ahead if it was); starts the next."""
        ahead, self._ahead = self._ahead, None
        # Never two `train_data` calls at once.
        made = ahead[1].result() if ahead is not None else None
        if made is not None and ahead[0] == epoch and not in_epoch:
            iterator = made
        else:
            iterator = self.train_data(epoch, in_epoch)
        if epoch > first_epoch and epoch + 1 < self.epochs:
            if self._maker is None:
                self._maker = ThreadPoolExecutor(1, "la_keras_train_data")
            future = self._maker.submit(self.train_data, epoch + 1, 0)
            self._ahead = (epoch + 1, future)
        return iterator

    def _run_epoch(self, step: int, first_epoch: int) -> int:
        epoch, in_epoch = divmod(step, self.steps_per_epoch)
        for hook in self.epoch_hooks:
            hook.on_epoch_begin(epoch)
        iterator = self._iterator(epoch, in_epoch, first_epoch)
        self.runner.train_accuracy.reset_state()
        dispatch = getattr(self.runner, "dispatch_steps", None)
        dispatch = dispatch or self.runner.train_steps
        first_step, loss_sum = step, 0.0
        while in_epoch < self.steps_per_epoch:
            chunk = self._chunk(step, in_epoch)
            value = dispatch(iterator, chunk)
            self._read_loss()  # the previous chunk's, done by now
            self._unread = (step, chunk, value)
            step += chunk
            in_epoch += chunk
            loss_sum = loss_sum + value
            every = self.checkpoint_every_steps
            if in_epoch < self.steps_per_epoch:
                if every and step % every == 0:
                    self._save(step, epoch)
                if self.stop_requested():
                    self._stop(step, epoch)
        self._end_epoch(epoch, step, loss_sum, step - first_step)
        if self.stop_requested() and step < self.total_steps:
            self._stop(step, epoch + 1)
        return step

    def _stop(self, step: int, epoch: int) -> None:
        if self._last_saved_step != step:
            self._save(step, epoch)
        self._read_loss()
        self._write_records()
        raise TrainingPreempted(step, self.last_checkpoint)

    def _end_epoch(self, epoch, step, loss_sum, steps) -> None:
        rate = 0.0
        if self.progress is not None:
            rate = self.progress.images_per_second(step)
        self.records.epoch(
            epoch,
            step,
            loss_sum,
            steps,
            self.runner.train_accuracy.result(),
            self.runner.learning_rate,
            rate,
        )
        last = step >= self.total_steps
        evaluate = (
            self.on_epoch_end is not None
            and not last
            and self.eval_every_epochs > 0
            and (epoch + 1) % self.eval_every_epochs == 0
        )
        every = self.checkpoint_every_steps
        due = last or evaluate or bool(every and step % every == 0)
        if not due and self._last_saved_step != step:
            due = self._checkpoint_due.due()
            # Clocks differ between workers; a save is done by all or none.
            agree = getattr(self.runner, "any_worker", None)
            due = agree(due) if agree is not None else due
        if due and self._last_saved_step != step:
            self._save(step, epoch + 1)
        if self._log_due.due():
            self._write_records()
        if evaluate:
            self.on_epoch_end(epoch, step)
