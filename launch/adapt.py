"""Estimate a deployment class mix: `python -m launch.adapt`.

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

import os

import numpy as np
from absl import app
from absl import flags
from absl import logging

from la_keras import calibration as calibration_lib
from la_keras import prior_shift
from la_keras.datasets import folder
from la_keras.runs import adaptation
from la_keras.runs import outputs
from la_keras.runs import run_state
from la_keras.runs.resolved import ResolvedConfig
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


def deployment_logits(flags_obj, config, state):
    """`(logits, labels or None, what)` of the data to adapt to."""
    dataset = flags_obj.dataset
    given = not flags_obj["dataset"].using_default_value
    if given and folder.is_unlabelled(dataset):
        logits, labels = adaptation.unlabelled_logits(
            dataset, state.model, state.info, config.data.test_batch_size
        )
        return logits, labels, dataset
    logits, labels = adaptation.split_logits(
        config, state.model, flags_obj.split
    )
    return logits, labels, f"{config.data.dataset} ({flags_obj.split} split)"


def run(flags_obj) -> dict:
    """Estimates the prior; writes it; returns the report dict."""
    unlabelled = folder.is_unlabelled(flags_obj.dataset)
    given = None if unlabelled else _given_dataset(flags_obj)
    config = ResolvedConfig.read(flags_obj.model_dir).with_data(given)
    state = run_state.newest_state(config)
    calibration, holdout = adaptation.fit_calibration(
        config, state.model, flags_obj.calibration
    )
    logits, labels, what = deployment_logits(flags_obj, config, state)
    est = adaptation.estimate(
        logits, config, state.info, flags_obj.method, calibration, holdout
    )
    report = {
        "data": what,
        "examples": len(logits),
        "method": est.method,
        "iterations": est.iterations,
        "converged": est.converged,
        "calibration": calibration.to_dict(),
        "target_prior": [float(p) for p in est.prior],
    }
    true = None
    if labels is not None:
        report["top1"] = adaptation.rule_accuracies(
            config, state.info, logits, labels, est.prior
        )
        true = np.bincount(labels, minlength=state.info.num_classes) / len(
            labels
        )
    report["table"] = adaptation.format_table(state.info, est.prior, true)
    output = flags_obj.output or os.path.join(
        flags_obj.model_dir, adaptation.TARGET_PRIOR_FILE
    )
    outputs.write_json(output, report["target_prior"])
    logging.info("Wrote %s.", output)
    report["output"] = output
    return report


def _given_dataset(flags_obj) -> str | None:
    flag = flags_obj["dataset"]
    return None if flag.using_default_value else flag.value


def format_report(report: dict) -> str:
    """What `launch.adapt` prints."""
    lines = [
        f"Estimated class prior of {report['data']} ({report['examples']} "
        f"images; {report['method']}, {report['iterations']} iterations, "
        f"calibration {report['calibration']['kind']}):",
        report["table"],
    ]
    if "top1" in report:
        lines.append("top-1 by rule:")
        for name, value in report["top1"].items():
            lines.append(f"  {name:<16} {value:.4f}")
    lines.append(f"Wrote {report['output']}.")
    return "\n".join(lines)


def main(_):
    flags_obj = flags.FLAGS
    if flags_obj["model_dir"].using_default_value:
        raise app.UsageError("Pass --model_dir of a launch.train run.")

    def adapt():
        print(format_report(run(flags_obj)))  # the report

    cli.run_main("launch.adapt", adapt)


if __name__ == "__main__":
    define_flags()
    cli.app_run(main)
