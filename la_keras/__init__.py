"""la_keras: long-tail learning via logit adjustment, for Keras 3.

The losses, layers, metrics, models and priors use `keras.ops` only and run
on every Keras backend. `la_keras.datasets` (TFDS and `tf.data` pipelines)
needs TensorFlow; `la_keras.runs` trains, evaluates and exports runs.
Everything is imported on first use, so `import la_keras` works where
TensorFlow is not installed (Keras's JAX backend), and its small modules
(`la_keras.priors`, `la_keras.runs.lock`) load without Keras.
"""

import importlib

__version__ = "0.1.0"

_SUBMODULES = (
    "datasets",
    "layers",
    "losses",
    "metrics",
    "models",
    "priors",
    "runs",
)
_NAMES = {
    "LogitAdjustedLoss": "la_keras.losses",
    "LogitAdjustedModel": "la_keras.models",
}

__all__ = [*_SUBMODULES, *_NAMES, "__version__"]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"la_keras.{name}")
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    raise AttributeError(f"module 'la_keras' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
