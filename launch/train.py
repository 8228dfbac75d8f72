"""Train a long-tail classifier: `python -m launch.train`.

Mirrors the official release (`python -m logit_adjustment.main`) with the
same flags and semantics, on the training core of `la_keras.training`
(checkpoints, resumption, NaN stop, preemption), and writes metrics.json, a
per-class plot and a serving SavedModel:

    python -m launch.train --flagfile=launch/configs/cifar10_lt.cfg \\
        --mode=loss --model_dir=/tmp/cifar10_lt_loss

Rerunning the same command after an interruption resumes from the latest
intact checkpoint in --model_dir. On SIGTERM (preemption) the run saves a
checkpoint of the current step and exits with status 75
(`la_keras.training.preemption.PREEMPTED_EXIT_CODE`).

`--loss` takes any name of `la_keras.losses.names()`; its hyperparameters
have their own flags (`--ldam_max_m`, `--ldam_s`, `--drw_start_epoch`,
`--drw_beta`, `--eql_lambda`, `--eql_gamma`, `--cb_beta`, `--focal_gamma`).
A loss with an `on_epoch_begin(epoch)` method (LDAM's deferred
re-weighting) is called at the start of every epoch, also after a resume.

The backend is Keras's (`KERAS_BACKEND`): TensorFlow by default
(`launch/train_tf.py`, `tf.distribute`), or JAX (`launch/train_jax.py`,
which needs neither TensorFlow nor TFDS with `--dataset=prepared:PATH`).
"""

from __future__ import annotations

import keras
from absl import flags

from launch import common
from launch import common_flags
from launch import reporting
from launch.config import RunConfig


def run(config, strategy_override=None, flags_obj=None) -> dict:
    """Trains, evaluates and exports; returns the final metrics dict.

    Args:
        config: a `RunConfig`, or parsed absl flags (resolved once here).
        strategy_override: a `tf.distribute.Strategy` to use instead of
            `config.strategy` (TensorFlow backend only).
        flags_obj: the flags, for flags.txt (default: `config` if it is
            flags).
    """
    if not isinstance(config, RunConfig):
        flags_obj = config
        config = RunConfig.from_flags(config)
    if keras.backend.backend() == "jax":
        from launch import train_jax

        if strategy_override is not None:
            raise ValueError("strategy_override needs the TensorFlow backend.")
        return train_jax.run(config, flags_obj)
    from launch import train_tf

    return train_tf.run(config, strategy_override, flags_obj)


def main(_):
    def train():
        metrics = run(flags.FLAGS)
        print(reporting.format_summary(metrics))  # the run's report

    common.run_main("launch.train", train)


if __name__ == "__main__":
    common_flags.define_flags()
    common.app_run(main)
