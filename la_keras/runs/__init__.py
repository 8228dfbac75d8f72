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

from la_keras.runs.errors import RunError
from la_keras.runs.resolved import ResolvedConfig
from la_keras.runs.run_adapt import adapt
from la_keras.runs.run_config import RunConfig
from la_keras.runs.run_evaluate import evaluate
from la_keras.runs.run_export import export
from la_keras.runs.run_train import train

__all__ = [
    "adapt",
    "ResolvedConfig",
    "RunConfig",
    "RunError",
    "evaluate",
    "export",
    "train",
]
