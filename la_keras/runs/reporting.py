"""Evaluation of a run's logits: metrics.json, the per-class plot, the logs.

The post-hoc rows go through the library's `LogitAdjustment` layer
(`la_keras.training.evaluation.adjust_logits`), the same maths as the
served SavedModel and `LogitAdjustedModel`. A loss-mode run has no post-hoc
rows: its loss already adjusted the logits, so its raw logits are the
balanced-posterior estimate, and adjusting them again would adjust twice.
"""

from __future__ import annotations

import numpy as np
from absl import logging

from la_keras.runs import data_checks
from la_keras.runs import outputs
from la_keras.training import evaluation
from la_keras.training.progress import hms  # noqa: F401 - re-exported

SHOTS = ("many", "medium", "few")
LOSS_MODE_NOTE = (
    "mode=loss: the raw logits are the balanced-posterior estimate (the "
    "loss adjusted them); no post-hoc adjustment, which would adjust twice."
)
TEST_SWEEP_NOTE = (
    "tau* is chosen on the holdout split; test_tau_sweep is for analysis "
    "only and must not be used to choose tau."
)
WEIGHT_NORM_LOSS_NOTE = (
    "diagnostic only: tau-normalisation rebalances the classifier of a "
    "mode=loss run, whose loss already balanced its logits; the run's "
    "figures are the raw ones."
)


def _report(logits, labels, train_counts, priors=None, tau=None) -> dict:
    if tau is None:
        return evaluation.classification_report(logits, labels, train_counts)
    adjusted = evaluation.adjust_logits(logits, priors, tau)
    return {
        "tau": tau,
        **evaluation.classification_report(adjusted, labels, train_counts),
    }


def evaluate_logits(
    config,
    train_counts,
    priors,
    test: tuple[np.ndarray, np.ndarray],
    holdout: tuple[np.ndarray, np.ndarray] | None,
) -> dict:
    """Raw and post-hoc adjusted metrics on test; tau* chosen on the holdout.

    tau* is chosen on the holdout split only (never on test), by balanced
    accuracy over `config.tau_grid`; without a holdout it is absent and
    `holdout_warning` says why. A loss-mode run gets the raw metrics only
    (and the holdout's size): its logits are already adjusted.

    Args:
        config: the `ResolvedConfig` (tau, tau_grid, mode, dataset).
    """
    logits, labels = test
    result = {"raw": _report(logits, labels, train_counts)}
    metrics = {"test": result, "holdout": None}
    if config.mode == "loss":
        if holdout is not None:
            metrics["holdout"] = {"num_examples": int(len(holdout[1]))}
        return metrics
    result["adjusted"] = _report(
        logits, labels, train_counts, priors, config.tau
    )
    if holdout is not None:
        sweep = evaluation.sweep_tau(*holdout, priors, config.tau_grid)
        tau_star = evaluation.select_tau(sweep)
        metrics["holdout"] = {
            "num_examples": int(len(holdout[1])),
            "tau_sweep": sweep,
            "tau_star": tau_star,
        }
        result["adjusted_tuned"] = _report(
            logits, labels, train_counts, priors, tau_star
        )
    elif config.mode == "posthoc":
        where = (
            "prepare the file with --holdout_fraction>0"
            if config.data.dataset.startswith("prepared:")
            else "pass --holdout_fraction>0"
        )
        metrics["holdout_warning"] = (
            f"--dataset={config.data.dataset} has no holdout split, so tau "
            f"was not tuned (never on test); reporting tau={config.tau} "
            f"only. To tune it, {where}."
        )
    return metrics


def evaluation_report(config, info, logits: dict, source: str) -> dict:
    """The report of launch.evaluate: metrics.json's figures for the mode.

    The test (and holdout) figures are `evaluate_logits`', as launch.train
    writes them to metrics.json; a post-hoc evaluation adds the tau sweep
    on test (for analysis only), a loss-mode one gets raw figures only and
    the note that says why.

    Args:
        config: the `ResolvedConfig` evaluated with (its mode decides).
        info: the `DatasetInfo` (train counts and priors).
        logits: `{split: (logits, labels)}`, "test" and maybe "holdout".
        source: the checkpoint or SavedModel evaluated.
    """
    report = evaluate_logits(
        config, info.train_counts, info.priors, logits["test"],
        logits.get("holdout"),
    )  # fmt: skip
    if config.mode == "loss":
        report["note"] = LOSS_MODE_NOTE
    else:
        report["test_tau_sweep"] = evaluation.sweep_tau(
            *logits["test"], info.priors, config.tau_grid
        )
        report["note"] = TEST_SWEEP_NOTE
    report.update(
        source=source,
        dataset=config.data.dataset,
        mode=config.mode,
        loss=config.loss,
    )
    return report


def headline_row(test: dict) -> str:
    """The row of a test report that stands for it, the one a SavedModel
    serves: tau* when tuned, else the post-hoc one, else raw (loss mode)."""
    return next((k for k in ("adjusted_tuned", "adjusted") if k in test), "raw")


# How many skipped files metrics.json and the log name.
SKIPPED_NAMED = 5


def dataset_facts(info) -> dict:
    """What metrics.json says of the data: the class names, the test
    split's checks (`la_keras.runs.data_checks`) and, for a folder dataset
    trained with --skip_bad_images, the files left out."""
    facts = {"class_names": list(info.class_names), **data_checks.facts(info)}
    if info.skipped_images:
        facts["skipped_images"] = {
            "count": len(info.skipped_images),
            "first": list(info.skipped_images[:SKIPPED_NAMED]),
        }
    return facts


def model_facts(config, model) -> dict:
    """What metrics.json says of the model: its parameters, trained and all,
    and for a pretrained backbone how it was fine-tuned."""

    def count(variables):
        return int(sum(np.prod(v.shape) for v in variables))

    facts = {
        "parameters": {
            "trainable": count(model.trainable_variables),
            "total": count(model.variables)
            - count(v for v in model.variables if "lora_" in v.path),
        }
    }
    if config.backbone:
        facts["finetune"] = config.finetune
        facts["pretrained"] = config.pretrained
    return facts


def log_skipped(info) -> None:
    """The warnings of the data a run starts with: the unreadable files it
    trains without, the test split's problems (`la_keras.runs.data_checks`)."""
    data_checks.log(info)
    skipped = info.skipped_images
    if skipped:
        more = len(skipped) - SKIPPED_NAMED
        logging.warning(
            "--skip_bad_images: training without %d unreadable image file%s: "
            "%s%s.",
            len(skipped), "s" if len(skipped) != 1 else "",
            ", ".join(skipped[:SKIPPED_NAMED]),
            f" and {more} more" if more > 0 else "",
        )  # fmt: skip


def run_facts(config, loop, step: int, epoch: int, train_examples: int) -> dict:
    """What metrics.json says about the run besides the test metrics."""
    return dict(
        dataset=config.data.dataset,
        mode=config.mode,
        loss=config.loss,
        model=config.model,
        seed=config.data.seed,
        step=int(step),
        epoch=int(epoch),
        train_examples=int(train_examples),
        images_per_second=loop.progress.images_per_second(step),
    )


def served_tau(config, metrics: dict) -> float | None:
    """The tau baked into the SavedModel: posthoc only, tau* when tuned.

    None for baseline and loss-mode runs: their SavedModel serves the raw
    logits (its `tau` variable is 0).
    """
    if config.mode != "posthoc":
        return None
    if metrics.get("holdout"):
        return metrics["holdout"]["tau_star"]
    return config.tau


def serving_rule(config, info, tau: float | None) -> dict:
    """`export_saved_model`'s arguments for `serve_with_prior`'s rule.

    A post-hoc run takes its training prior out at the served `tau`; a
    baseline run (served raw) at `tau` if given, else its `--tau`; a
    loss-mode run's logits are already balanced (`mode="loss"`).
    """
    if config.mode == "loss":
        return {"mode": "loss"}
    return {
        "mode": config.mode,
        "train_prior": info.priors,
        "prior_tau": config.tau if tau is None else tau,
    }


def write_json(data: dict, path: str) -> None:
    """`outputs.write_json` (atomic), argument order of the old helper."""
    outputs.write_json(path, data)


def test_scalars(metrics: dict, mode: str) -> dict:
    """TensorBoard test/ scalars: official names plus balanced and shots."""
    raw = metrics["test"]["raw"]
    values = {"accuracy": raw["top1"]}
    reports = [("", raw)]
    if mode == "posthoc":
        adjusted = metrics["test"]["adjusted"]
        values["logit-adjusted accuracy"] = adjusted["top1"]
        reports.append(("logit-adjusted ", adjusted))
    for prefix, report in reports:
        values[prefix + "balanced accuracy"] = report["balanced_accuracy"]
        for shot in SHOTS:
            values[f"{prefix}{shot} accuracy"] = report[shot]
    return values


def report_test(config, info, logits: dict, summaries, step: int) -> dict:
    """The metrics of one evaluation: computed, written to TensorBoard, logged.

    Args:
        config: the `ResolvedConfig`.
        info: the `DatasetInfo` (train counts and priors).
        logits: `{split: (logits, labels)}`, "test" and maybe "holdout".
        summaries: the run's `Summaries`.
        step: the global step.
    """
    metrics = evaluate_logits(
        config, info.train_counts, info.priors, logits["test"],
        logits.get("holdout"),
    )  # fmt: skip
    summaries.write(summaries.test, test_scalars(metrics, config.mode), step)
    log_metrics(metrics)
    return metrics


def log_metrics(metrics: dict) -> None:
    rows = [("raw", metrics["test"]["raw"])]
    for key in ("adjusted", "adjusted_tuned"):
        if key in metrics["test"]:
            report = metrics["test"][key]
            rows.append((f"{key} (tau={report['tau']:g})", report))
    for name, r in rows:
        logging.info(
            "test %-24s top1 %.4f  balanced %.4f  many %s  medium %s  few %s",
            name,
            r["top1"],
            r["balanced_accuracy"],
            *(_fmt(r[s]) for s in SHOTS),
        )
    if metrics.get("holdout_warning"):
        logging.info("%s", metrics["holdout_warning"])
    for row in metrics.get("test_tau_sweep") or ():
        logging.info(
            "tau %-5g test top1 %.4f balanced %.4f",
            row["tau"],
            row["top1"],
            row["balanced_accuracy"],
        )


ROW_TITLES = {
    "raw": "raw logits",
    "adjusted": "post-hoc",
    "adjusted_tuned": "post-hoc, tau* (holdout)",
}


def accuracy_table(test: dict) -> list[str]:
    """Lines of a test-accuracy table: raw, post-hoc and tuned rows."""
    header = f"{'test accuracy':34s}{'top-1':>9s}{'balanced':>10s}" + "".join(
        f"{s:>9s}" for s in SHOTS
    )
    lines = [header, "-" * len(header)]
    for key, title in ROW_TITLES.items():
        report = test.get(key)
        if report is None:
            continue
        if "tau" in report:
            title = f"{title} tau={report['tau']:g}"
        lines.append(
            f"{title:34s}{report['top1']:9.4f}{report['balanced_accuracy']:10.4f}"
            + "".join(f"{_fmt(report[s]):>9s}" for s in SHOTS)
        )
    return lines


def format_summary(metrics: dict) -> str:
    """The end-of-run report of launch.train: test accuracy, tau, outputs."""
    lines = [
        f"{metrics['dataset']} {metrics['model']} mode={metrics['mode']} "
        f"loss={metrics['loss']}: {metrics['epoch']} epochs, step "
        f"{metrics['step']}",
        *accuracy_table(metrics["test"]),
    ]
    if metrics["mode"] == "loss":
        lines.append(LOSS_MODE_NOTE)
    if metrics.get("holdout_warning"):
        lines.append(metrics["holdout_warning"])
    if metrics.get("export_dir"):
        lines.append(f"SavedModel: {metrics['export_dir']}")
    if metrics.get("keras_model"):
        lines.append(f"Keras model: {metrics['keras_model']}")
    return "\n".join(lines)


def format_evaluation(report: dict, output: str | None) -> str:
    """The report of launch.evaluate: what was evaluated, the table, where."""
    lines = [f"{report['dataset']}: {report['source']}"]
    lines += accuracy_table(report["test"])
    if report.get("mode") == "loss":
        lines.append(LOSS_MODE_NOTE)
    if report.get("holdout_warning"):
        lines.append(report["holdout_warning"])
    shifted = report.get("shifted_test")
    if shifted:
        top1 = "  ".join(f"{k} {v:.4f}" for k, v in shifted["top1"].items())
        lines.append(
            f"test resampled to {shifted.get('source', shifted['test_prior'])} "
            f"({shifted['num_examples']} images), top-1: {top1}"
        )
    if report.get("tta"):
        lines.append(_tta_line(report))
    if report.get("served_tta", "none") != "none":
        lines.append(
            f"The SavedModel computes test-time ensembling "
            f"({report['served_tta']}): every figure above includes it."
        )
    if (report.get("weight_norm") or {}).get("diagnostic"):
        lines.append(f"weight_norm: {report['weight_norm']['diagnostic']}")
    if output and "test_tau_sweep" in report:
        lines.append(f"Report (with the tau sweeps): {output}")
    elif output:
        lines.append(f"Report: {output}")
    return "\n".join(lines)


def _tta_line(report: dict) -> str:
    tta = report["tta"]
    headline = report["test"][tta["row"]]
    tau = f" tau={tta['tau']:g}" if "tau" in tta else ""
    return (
        f"test-time ensembling ({tta['mode']}): balanced accuracy "
        f"{_fmt(tta['balanced_accuracy'])} (headline without it: "
        f"{_fmt(headline['balanced_accuracy'])}), top-1 {tta['top1']:.4f} "
        f"({headline['top1']:.4f}); {ROW_TITLES[tta['row']]}{tau}"
    )


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.4f}"
