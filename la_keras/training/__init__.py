"""The training core: the epoch loop, the step runners, checkpoints, metrics.

- `TrainingLoop` (`loop.py`): epochs, chunks, checkpoint cadence, resume,
  NaN stop, loss hooks, preemption, progress and summaries; independent of
  the backend. Its cadences go by the clock, and what it reports is
  written in batches (`cadence.py`), so that half-second epochs pay no
  per-epoch save, host sync or file flush.
- `Trainer` / `Predictor` (`trainer.py`): the `tf.distribute` step runner.
  Keras 3's `model.fit` does not run under `MultiWorkerMirroredStrategy`
  (keras-team/keras#20585), hence one `strategy.run` loop inside a
  `tf.function`, serving OneDevice, Mirrored, MultiWorkerMirrored and TPU.
- `JaxTrainer` (`jax_trainer.py`): the step runner of Keras's JAX backend.
- `CheckpointStore` (`checkpoints.py`, TensorFlow) and
  `ArrayCheckpointStore` (`array_checkpoints.py`, any backend): save, and
  resume from the newest checkpoint that restores, skipping damaged ones.
- `evaluation.py`: long-tail metrics of logits, raw and post-hoc adjusted.

The TensorFlow and JAX parts are imported on first use, so this package
imports where only one of them is installed.

Threads, and what each may touch:

- The main thread owns every process-wide state: TensorFlow's global seed
  (`tf.random.set_seed`, `keras.utils.set_random_seed`, set once at a
  run's start), `tf.config` (devices, determinism, threads), the eager
  context and its caches, signal handlers, and every step, checkpoint,
  evaluation and summary.
- `la_keras_train_data` (`TrainingLoop`) builds the next epoch's iterator
  while the main thread trains: a `tf.data` pipeline, or a JAX
  permutation. It only creates datasets and ops whose seeds it is given
  (`la_keras.seeds.epoch_seed`). In eager TensorFlow, `tf.random.set_seed`
  clears the context's caches, freeing the per-step container that a
  running `tf.function` still uses (a crash once Grappler adds
  `TemporaryVariable` ops to a large graph): never from this thread.
- The model_dir lock's heartbeat (`la_keras.runs.lock`) rewrites its lease file
  (`tf.io.gfile` only for remote paths) and touches nothing else.
- Preemption (`preemption.StopSignal`) installs its handlers on the main
  thread; the handler only sets a flag that the loop reads.
- `Progress` and `Summaries` run on the main thread.
"""

import importlib

from la_keras.seeds import epoch_seed
from la_keras.training.array_checkpoints import ArrayCheckpointStore
from la_keras.training.evaluation import classification_report
from la_keras.training.evaluation import select_tau
from la_keras.training.evaluation import sweep_tau
from la_keras.training.loop import NoUsableCheckpointError
from la_keras.training.loop import TrainingDivergedError
from la_keras.training.loop import TrainingLoop
from la_keras.training.loop import TrainingPreempted
from la_keras.training.progress import Progress
from la_keras.training.progress import Summaries

_LAZY = {
    "CheckpointStore": "la_keras.training.checkpoints",
    "JaxTrainer": "la_keras.training.jax_trainer",
    "Predictor": "la_keras.training.trainer",
    "Trainer": "la_keras.training.trainer",
}

__all__ = [
    "ArrayCheckpointStore",
    "NoUsableCheckpointError",
    "Progress",
    "Summaries",
    "TrainingDivergedError",
    "TrainingLoop",
    "TrainingPreempted",
    "classification_report",
    "epoch_seed",
    "select_tau",
    "sweep_tau",
    *_LAZY,
]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(
            f"module 'la_keras.training' has no attribute {name!r}"
        )
    return getattr(importlib.import_module(_LAZY[name]), name)
