"""Train a run: `la_keras.runs.train`, on the backend Keras runs on.

TensorFlow (`la_keras.runs.train_tf`, `tf.distribute`) or JAX
(`la_keras.runs.train_jax`, which needs neither TensorFlow nor TFDS with a
`prepared:` dataset). A run trains, evaluates and exports into its
model_dir, and a second call with the same model_dir resumes it from its
newest intact checkpoint.
"""

from __future__ import annotations

import keras

from la_keras.runs.resolved import ResolvedConfig
from la_keras.runs.run_config import RunConfig


def train(config, *, strategy=None) -> dict:
    """Trains, evaluates and exports; returns the final metrics dict.

    The metrics are also written to `<model_dir>/metrics.json`; flags.json
    records the resolved configuration and flags.txt the options given, as
    a `launch.train` flagfile.

    Args:
        config: a `RunConfig` (resolved here, once), or a `ResolvedConfig`.
        strategy: a `tf.distribute.Strategy` to use instead of
            `config.strategy` (TensorFlow backend only).

    Raises:
        RunError: options that conflict, data or a model_dir the run cannot
            use (one line).
        la_keras.training.TrainingPreempted: stopped by SIGTERM after a
            checkpoint; call again to resume.
        la_keras.training.TrainingDivergedError: a NaN or infinite loss.
    """
    options = None
    if isinstance(config, RunConfig):
        options, config = config, ResolvedConfig.resolve(config)
    if keras.backend.backend() == "jax":
        from la_keras.runs import train_jax

        if strategy is not None:
            raise ValueError("strategy needs the TensorFlow backend.")
        return train_jax.run(config, options)
    from la_keras.runs import train_tf

    return train_tf.run(config, strategy, options)
