"""The training core: the epoch loop, the step runners, checkpoints, metrics.

- `TrainingLoop` (`loop.py`): epochs, chunks, checkpoint cadence, resume,
  NaN stop, loss hooks, preemption, progress and summaries; independent of
  the backend.
- `Trainer` / `Predictor` (`trainer.py`): the `tf.distribute` step runner.
  Keras 3's `model.fit` does not run under `MultiWorkerMirroredStrategy`
  (keras-team/keras#20585), hence one `strategy.run` loop inside a
  `tf.function`, serving OneDevice, Mirrored, MultiWorkerMirrored and TPU.
- `CheckpointStore` (`checkpoints.py`): save, and resume from the newest
  checkpoint that restores, skipping damaged ones.
- `evaluation.py`: long-tail metrics of logits, raw and post-hoc adjusted.
"""

from la_keras.training.checkpoints import CheckpointStore
from la_keras.training.checkpoints import NoUsableCheckpointError
from la_keras.training.evaluation import classification_report
from la_keras.training.evaluation import select_tau
from la_keras.training.evaluation import sweep_tau
from la_keras.training.loop import TrainingDivergedError
from la_keras.training.loop import TrainingLoop
from la_keras.training.loop import TrainingPreempted
from la_keras.training.loop import epoch_seed
from la_keras.training.progress import Progress
from la_keras.training.progress import Summaries
from la_keras.training.trainer import Predictor
from la_keras.training.trainer import Trainer

__all__ = [
    "CheckpointStore",
    "NoUsableCheckpointError",
    "Predictor",
    "Progress",
    "Summaries",
    "Trainer",
    "TrainingDivergedError",
    "TrainingLoop",
    "TrainingPreempted",
    "classification_report",
    "epoch_seed",
    "select_tau",
    "sweep_tau",
]
