"""Estimate a deployment class mix: `la_keras.runs.adapt`.

Restores the newest state of a run (as `evaluate`), predicts logits on the
deployment data, and estimates its class prior (`la_keras.prior_shift`: EM
/ MLLS or BBSE) after calibrating the logits on the run's holdout (BCTS, TS
or none; saved as `<model_dir>/calibration.json`). A `folder:PATH` dataset
of a folder without `train/` is read whole, unlabelled, with the run's
preprocessing. The estimate is written as a JSON list of floats, the file
that `export(target_prior=...)` reads.
"""

from __future__ import annotations

import os

import numpy as np
from absl import logging

from la_keras.datasets import folder
from la_keras.runs import adaptation
from la_keras.runs import outputs
from la_keras.runs import run_state
from la_keras.runs.resolved import ResolvedConfig


def deployment_logits(options, config, state, split):
    """`(logits, labels or None, what)` of the data to adapt to."""
    dataset = options.dataset
    given = options.is_given("dataset")
    if given and folder.is_unlabelled(dataset):
        logits, labels = adaptation.unlabelled_logits(
            dataset, state.model, state.info, config.data.test_batch_size
        )
        return logits, labels, dataset
    logits, labels = adaptation.split_logits(config, state.model, split)
    return logits, labels, f"{config.data.dataset} ({split} split)"


def adapt(
    options, *, split="test", method="em", calibration="bcts", output=None
) -> dict:
    """Estimates the class prior of deployment data; writes it as JSON.

    Args:
        options: a `RunConfig`: `model_dir` names the run; `dataset`, when
            given, is the data to adapt to (the run's data at another
            path, or a folder of unlabelled images).
        split: the split of the run's dataset to adapt to otherwise.
        method: the estimator, "em" (MLLS) or "bbse".
        calibration: fitted on the run's holdout first: "bcts", "ts" or
            "none".
        output: the JSON list's path (default: <model_dir>/
            target_prior.json, which `export(target_prior=...)` reads).

    Returns:
        The report dict: the estimate, the table printed, and with labels
        the top-1 of the balanced, estimated and true-prior rules.
    """
    unlabelled = folder.is_unlabelled(options.dataset)
    given = (
        None
        if unlabelled
        else (options.dataset if options.is_given("dataset") else None)
    )
    config = ResolvedConfig.read(options.model_dir).with_data(given)
    state = run_state.newest_state(config)
    calibration, holdout = adaptation.fit_calibration(
        config, state.model, calibration
    )
    logits, labels, what = deployment_logits(options, config, state, split)
    est = adaptation.estimate(
        logits, config, state.info, method, calibration, holdout
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
    output = output or os.path.join(
        options.model_dir, adaptation.TARGET_PRIOR_FILE
    )
    outputs.write_json(output, report["target_prior"])
    logging.info("Wrote %s.", output)
    report["output"] = output
    return report


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
