"""Estimate a deployment class mix: `python -m launch.adapt`, the flags of
`la_keras.runs.adapt`.

Restores the newest state of a `launch.train` run (as launch.evaluate),
predicts logits on the deployment data, and estimates its class prior
(`la_keras.prior_shift`: EM / MLLS or BBSE) after calibrating the logits on
the run's holdout (BCTS, TS or none; saved as `<model_dir>/calibration.json`):

    python -m launch.adapt --model_dir=/tmp/run --split=test
    python -m launch.adapt --model_dir=/tmp/run --dataset=folder:/data/new

`--dataset=folder:PATH` of a folder without `train/` reads every image under
PATH, unlabelled, with the run's preprocessing (`--split` is then unused).
Prints the estimate, largest classes first, and writes it as a JSON list of
floats (`<model_dir>/target_prior.json` or `--output`), the file that
`launch.export --target_prior` reads. With labels, also reports the top-1 of
the balanced (served) rule, the estimated-prior rule and the true-prior
(oracle) rule.
"""

from __future__ import annotations

from absl import flags

from la_keras import calibration as calibration_lib
from la_keras import prior_shift
from la_keras import runs
from la_keras.runs.run_adapt import format_report
from launch import cli
from launch import common_flags


def define_flags() -> None:
    common_flags.define_flags()
    if "calibration" in flags.FLAGS:
        return
    flags.DEFINE_string("split", "test", "Split of the run's dataset.")
    flags.DEFINE_enum("method", "em", prior_shift.METHODS, "Estimator.")
    flags.DEFINE_enum(
        "calibration",
        "bcts",
        calibration_lib.KINDS,
        "Calibration fitted on the run's holdout before estimating.",
    )
    if "output" not in flags.FLAGS:
        flags.DEFINE_string(
            "output",
            None,
            "target_prior.json path (default: in --model_dir).",
        )


def run(flags_obj) -> dict:
    """Estimates the prior (`la_keras.runs.adapt`); returns the report."""
    return cli.call(
        runs.adapt, flags_obj, ("split", "method", "calibration", "output")
    )


def main(_):
    cli.require_model_dir(flags.FLAGS)

    def adapt():
        print(format_report(run(flags.FLAGS)))  # the report

    cli.run_main("launch.adapt", adapt)


if __name__ == "__main__":
    define_flags()
    cli.app_run(main)
