"""la_keras: long-tail learning via logit adjustment, for Keras 3.

The losses, layers, metrics, models and priors use `keras.ops` only and run
on every Keras backend. `la_keras.datasets` (TFDS and `tf.data` pipelines)
needs TensorFlow and is imported on first use, so `import la_keras` works
where TensorFlow is not installed (Keras's JAX backend).
"""

import importlib

from la_keras import layers
from la_keras import losses
from la_keras import metrics
from la_keras import models
from la_keras import priors
from la_keras.losses import LogitAdjustedLoss
from la_keras.models import LogitAdjustedModel

__version__ = "0.1.0"


def __getattr__(name):
    if name == "datasets":
        return importlib.import_module("la_keras.datasets")
    raise AttributeError(f"module 'la_keras' has no attribute {name!r}")
