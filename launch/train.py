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

Each flag is a field of `la_keras.runs.RunConfig`, and the run is
`la_keras.runs.train(config)`: from Python, the same run without flags.
The backend is Keras's (`KERAS_BACKEND`): TensorFlow by default
(`la_keras/runs/train_tf.py`, `tf.distribute`), or JAX (`la_keras/runs/train_jax.py`,
which needs neither TensorFlow nor TFDS with `--dataset=prepared:PATH`).
"""

from __future__ import annotations

from absl import flags

from la_keras import runs
from la_keras.runs import reporting
from launch import cli
from launch import common_flags


def run(config, strategy_override=None) -> dict:
    """`la_keras.runs.train` of `config`: a `RunConfig`, a
    `ResolvedConfig`, or parsed absl flags (`RunConfig.from_flags`)."""
    if not isinstance(config, (runs.RunConfig, runs.ResolvedConfig)):
        config = runs.RunConfig.from_flags(config)
    return runs.train(config, strategy=strategy_override)


def main(_):
    def train():
        metrics = run(flags.FLAGS)
        print(reporting.format_summary(metrics))  # the run's report

    cli.run_main("launch.train", train)


if __name__ == "__main__":
    common_flags.define_flags()
    cli.app_run(main)
