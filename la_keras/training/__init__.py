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
"""

import importlib

from la_keras.training.array_checkpoints import ArrayCheckpointStore
from la_keras.training.evaluation import classification_report
from la_keras.training.evaluation import select_tau
from la_keras.training.evaluation import sweep_tau
from la_keras.training.loop import NoUsableCheckpointError
from la_keras.training.loop import TrainingDivergedError
from la_keras.training.loop import TrainingLoop
from la_keras.training.loop import TrainingPreempted
from la_keras.training.loop import epoch_seed
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
