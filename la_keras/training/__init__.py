"""A custom distributed training loop and evaluation helpers.

Keras 3's `model.fit` does not run under `MultiWorkerMirroredStrategy`
(keras-team/keras#20585), so `launch.train` trains with `Trainer`: one
`strategy.run` loop inside a `tf.function`, serving OneDevice, Mirrored,
MultiWorkerMirrored and TPU strategies alike.
"""

from la_keras.training.evaluation import classification_report
from la_keras.training.evaluation import select_tau
from la_keras.training.evaluation import sweep_tau
from la_keras.training.loop import Predictor
from la_keras.training.loop import Trainer
from la_keras.training.loop import epoch_seed

__all__ = [
    "Predictor",
    "Trainer",
    "classification_report",
    "epoch_seed",
    "select_tau",
    "sweep_tau",
]
