"""Runs: train, evaluate and export from Python, as `launch/` does from flags.

    from la_keras import runs

    config = runs.RunConfig(dataset="folder:/data/birds", model="mobilenet",
                            epochs=10, model_dir="/tmp/birds")
    metrics = runs.train(config)      # also /tmp/birds/metrics.json
    report = runs.evaluate(config)    # /tmp/birds/eval_metrics.json
    path = runs.export(config)        # /tmp/birds/export, a SavedModel

`RunConfig` holds one option per flag of `launch.train` (same names,
defaults and checks) in frozen parts; `ResolvedConfig` is a run's resolved
configuration, as its model_dir records it in flags.json. A model_dir holds
one run: calling `train` again resumes it, and `ModelDir` (`model_dir.py`)
keeps its lock, records and outputs.
"""

import importlib

# What `la_keras.runs` offers, by the module that defines it. They are
# imported on first use: `la_keras.runs.lock` and the other small modules
# load without Keras or TensorFlow.
_EXPORTS = {
    "RunError": "la_keras.runs.errors",
    "ResolvedConfig": "la_keras.runs.resolved",
    "RunConfig": "la_keras.runs.run_config",
    "adapt": "la_keras.runs.run_adapt",
    "evaluate": "la_keras.runs.run_evaluate",
    "export": "la_keras.runs.run_export",
    "train": "la_keras.runs.run_train",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(
            f"module 'la_keras.runs' has no attribute {name!r}"
        )
    return getattr(importlib.import_module(module), name)


def __dir__():
    return __all__
