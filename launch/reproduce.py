"""Reproduce the paper's main table: `python -m launch.reproduce`.

Trains and evaluates the rows of Menon et al.'s comparison (ICLR 2021,
"Long-tail learning via logit adjustment") on CIFAR-10-LT / CIFAR-100-LT and
writes RESULTS.md: balanced error (mean ± std over seeds), many / medium /
few-shot accuracy, the official release's published figures, the budget,
the hardware, the wall time and a per-class accuracy plot.

    TFDS_DATA_DIR=../shared/tfds python -m launch.reproduce \\
        --datasets=cifar10_lt --seeds=0 --budget=short \\
        --output_dir=/tmp/reproduce_short

Rows and the training runs they come from (one set per dataset and seed):

  ERM, weight normalisation (tau=1, tau*),  one `--mode=posthoc` run
  logit adjustment post-hoc (tau=1, tau*)   (cross-entropy); WN is
                                            `launch.evaluate --weight_norm_taus`
  adaptive margin (LDAM)                    `--loss=ldam`
  equalised loss                            `--loss=equalized`
  logit-adjusted loss                       `--mode=loss`

tau* is chosen on the holdout split (10% of the training set, class
stratified), never on test. Every training is a `python -m launch.train`
subprocess under `<output_dir>/<dataset>/seed<k>/<run>`, with its log in
`train.log` there: a crash stays in its run, and rerunning the same command
skips the runs that wrote metrics.json and resumes the others from their
checkpoints.

Budgets (`--budget`):
  smoke  1 epoch of ResNet-8 (launch/configs/reproduce_smoke.cfg); for the
         synthetic `test` dataset and the tests.
  short  a compressed schedule, the official ResNet-32, XLA
         (launch/configs/reproduce_short.cfg): about an hour for CIFAR-10-LT
         and one seed on a 2-core CPU.
  full   the official schedules (launch/configs/cifar10_lt.cfg: 1241
         epochs, cifar100_lt.cfg: 1419 epochs). Run it on a GPU or TPU, e.g.
         `--budget=full --seeds=0,1,2 --train_flag=--strategy=mirrored`
         (or `--train_flag=--strategy=tpu --train_flag=--tpu=NAME`).

`--train_flag=--epochs=12` (repeatable) appends flags to every training.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
from absl import app
from absl import flags
from absl import logging

from launch import reporting

CONFIGS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs")
BUDGETS = ("smoke", "short", "full")
METHODS = ("erm", "weight_norm", "ldam", "equalized", "la_posthoc", "la_loss")
# Balanced-error grid of tau for weight normalisation, chosen on the holdout.
WEIGHT_NORM_TAUS = ("0", "0.25", "0.5", "0.75", "1", "1.25", "1.5", "2")

# Training run -> its launch.train flags.
RUNS = {
    "baseline": ["--mode=posthoc"],
    "ldam": ["--mode=loss", "--loss=ldam"],
    "equalized": ["--mode=loss", "--loss=equalized"],
    "la_loss": ["--mode=loss", "--loss=logit_adjusted"],
}
METHOD_RUN = {
    "erm": "baseline",
    "weight_norm": "baseline",
    "la_posthoc": "baseline",
    "ldam": "ldam",
    "equalized": "equalized",
    "la_loss": "la_loss",
}
# (method, row label, source, key of the report, official release column)
# source "train" is the run's metrics.json["test"], "wn" the weight
# normalisation report of launch.evaluate.
ROWS = (
    ("erm", "ERM", "train", "raw", "baseline"),
    ("weight_norm", "Weight normalisation (τ = 1)", "wn", "tau_1", None),
    ("weight_norm", "Weight normalisation (τ = τ*)", "wn", "tuned", None),
    ("ldam", "Adaptive margin (LDAM)", "train", "raw", None),
    ("equalized", "Equalised loss", "train", "raw", None),
    ("la_posthoc", "Logit adjustment post-hoc (τ = 1)", "train", "adjusted",
     "posthoc"),
    ("la_posthoc", "Logit adjustment post-hoc (τ = τ*)", "train",
     "adjusted_tuned", None),
    ("la_loss", "Logit-adjusted loss", "train", "raw", "loss"),
)  # fmt: skip
# Balanced test accuracy published in the official release's README
# (google-research/logit_adjustment), one run on a GPU, official TFRecords.
OFFICIAL = {
    "cifar10_lt": {"baseline": 0.7136, "posthoc": 0.7732, "loss": 0.7789},
    "cifar100_lt": {"baseline": 0.3987, "posthoc": 0.4407, "loss": 0.4406},
}
# Curves of the per-class plot.
PLOT_ROWS = (
    "ERM",
    "Weight normalisation (τ = τ*)",
    "Adaptive margin (LDAM)",
    "Equalised loss",
    "Logit adjustment post-hoc (τ = τ*)",
    "Logit-adjusted loss",
)


def define_flags() -> None:
    if "budget" in flags.FLAGS:
        return
    flags.DEFINE_list(
        "datasets",
        ["cifar10_lt", "cifar100_lt"],
        "Datasets (launch.train --dataset values).",
    )
    flags.DEFINE_list(
        "methods", list(METHODS), f"Rows to produce, from: {', '.join(METHODS)}."
    )
    flags.DEFINE_list("seeds", ["0"], "Seeds; the table shows mean ± std.")
    flags.DEFINE_enum("budget", "short", list(BUDGETS), "See the docstring.")
    flags.DEFINE_string(
        "output_dir", "reproduce_runs", "Where runs and RESULTS.md go."
    )
    flags.DEFINE_string(
        "results_md",
        None,
        "Path of the report (default <output_dir>/RESULTS.md); the plots go "
        "to results/ next to it.",
    )
    flags.DEFINE_string(
        "data_dir", None, "TFDS data_dir (default: TFDS_DATA_DIR)."
    )
    flags.DEFINE_multi_string(
        "train_flag",
        [],
        "A flag appended to every launch.train command, e.g. --epochs=12.",
    )
    flags.DEFINE_float(
        "ldam_s",
        1.0,
        "LDAM logit scale. Cao et al.'s s=30 assumes a cosine classifier; on "
        "the ResNet's raw logits it diverges (measured: loss 1e15 within 62 "
        "steps), so s=1 is the default here.",
    )
    flags.DEFINE_string(
        "data_note",
        "",
        "A sentence about the data for RESULTS.md (e.g. its provenance).",
    )


def budget_flags(budget: str, dataset: str) -> list[str]:
    """The --flagfile of a budget and dataset."""
    if budget == "full":
        path = os.path.join(CONFIGS, f"{dataset}.cfg")
        if not os.path.exists(path):
            raise app.UsageError(
                f"--budget=full has no official schedule for {dataset}: "
                "only cifar10_lt and cifar100_lt have one (launch/configs)."
            )
    else:
        path = os.path.join(CONFIGS, f"reproduce_{budget}.cfg")
    return [f"--flagfile={path}"]


def train_args(flags_obj, dataset: str, seed: int, run: str, run_dir: str):
    args = budget_flags(flags_obj.budget, dataset)
    args += [
        f"--dataset={dataset}",
        f"--seed={seed}",
        f"--model_dir={run_dir}",
        f"--tb_log_dir={os.path.join(run_dir, 'log')}",
        *RUNS[run],
    ]
    if run == "ldam":
        args.append(f"--ldam_s={flags_obj.ldam_s}")
    if flags_obj.data_dir:
        args.append(f"--data_dir={flags_obj.data_dir}")
    return args + list(flags_obj.train_flag)


def run_subprocess(module: str, args: list[str], run_dir: str) -> bool:
    """Runs `python -m module args`, logging to run_dir; True on success.

    Adds the wall time to `run_dir/wall_time.json` (kept across reruns).
    """
    os.makedirs(run_dir, exist_ok=True)
    log_path = os.path.join(run_dir, f"{module.split('.')[-1]}.log")
    logging.info("python -m %s %s  (log: %s)", module, " ".join(args), log_path)
    start = time.time()
    with open(log_path, "a") as log:
        returncode = subprocess.call(
            [sys.executable, "-m", module, *args],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    elapsed = time.time() - start
    timing = _read_json(os.path.join(run_dir, "wall_time.json")) or {}
    timing[module] = timing.get(module, 0.0) + elapsed
    reporting.write_json(timing, os.path.join(run_dir, "wall_time.json"))
    if returncode:
        logging.error(
            "python -m %s failed (exit %d) after %.0f s; see %s.",
            module, returncode, elapsed, log_path,
        )  # fmt: skip
    else:
        logging.info("python -m %s done in %.0f s.", module, elapsed)
    return returncode == 0


def _read_json(path: str):
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def run_all(flags_obj) -> dict:
    """Trains and evaluates what is missing; returns the collected results.

    Returns:
        `{dataset: {seed: {"runs": {run: metrics or None},
        "wn": report or None, "dirs": {run: dir}}}}`.
    """
    runs = sorted({METHOD_RUN[m] for m in flags_obj.methods}, key=list(RUNS).index)
    results = {}
    for dataset in flags_obj.datasets:
        budget_flags(flags_obj.budget, dataset)  # fail early
        results[dataset] = {}
        for seed in (int(s) for s in flags_obj.seeds):
            seed_dir = os.path.join(
                flags_obj.output_dir, dataset, f"seed{seed}"
            )
            entry = {"runs": {}, "wn": None, "dirs": {}}
            for run in runs:
                run_dir = os.path.join(seed_dir, run)
                entry["dirs"][run] = run_dir
                metrics_path = os.path.join(run_dir, "metrics.json")
                if os.path.exists(metrics_path):
                    logging.info("Skipping %s: %s exists.", run, metrics_path)
                else:
                    run_subprocess(
                        "launch.train",
                        train_args(flags_obj, dataset, seed, run, run_dir),
                        run_dir,
                    )
                entry["runs"][run] = _read_json(metrics_path)
            if "weight_norm" in flags_obj.methods:
                entry["wn"] = _weight_norm(flags_obj, entry)
            results[dataset][seed] = entry
    return results


def _weight_norm(flags_obj, entry) -> dict | None:
    if entry["runs"].get("baseline") is None:
        return None
    run_dir = entry["dirs"]["baseline"]
    path = os.path.join(run_dir, "weight_norm.json")
    if not os.path.exists(path):
        run_subprocess(
            "launch.evaluate",
            [
                f"--model_dir={run_dir}",
                f"--weight_norm_taus={','.join(WEIGHT_NORM_TAUS)}",
                f"--output={path}",
            ],
            run_dir,
        )
    report = _read_json(path)
    return None if report is None else report.get("weight_norm")


def row_reports(flags_obj, seed_entry) -> dict:
    """Row label -> the test report of that row (None when missing)."""
    out = {}
    for method, label, source, key, _ in ROWS:
        if method not in flags_obj.methods:
            continue
        if source == "wn":
            report = (seed_entry["wn"] or {}).get(key)
        else:
            metrics = seed_entry["runs"].get(METHOD_RUN[method])
            report = None if metrics is None else metrics["test"].get(key)
        out[label] = report
    return out


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    values = np.asarray(values, dtype=np.float64)
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return float(np.mean(values)), std


def _pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def table(flags_obj, dataset: str, per_seed: dict) -> list[str]:
    """The Markdown table of one dataset."""
    official = OFFICIAL.get(dataset, {})
    lines = [
        "| Method | Balanced error (%) | τ | Many (%) | Medium (%) | Few (%) "
        "| Official release, balanced error (%) |",
        "|:--|--:|--:|--:|--:|--:|--:|",
    ]
    reports = {seed: row_reports(flags_obj, e) for seed, e in per_seed.items()}
    for method, label, _, _, official_key in ROWS:
        if method not in flags_obj.methods:
            continue
        done = [r[label] for r in reports.values() if r.get(label)]
        if not done:
            lines.append(f"| {label} | not run (failed) | | | | | |")
            continue
        mean, std = _mean_std([1 - r["balanced_accuracy"] for r in done])
        spread = (
            f"± {100 * std:.2f}"
            if std is not None
            else f"± n/a ({len(done)} seed)"
        )
        taus = sorted({r["tau"] for r in done if "tau" in r})
        shots = []
        for shot in reporting.SHOTS:
            values = [r[shot] for r in done if r[shot] is not None]
            shots.append(_pct(np.mean(values)) if values else "n/a")
        ref = official.get(official_key) if official_key else None
        lines.append(
            f"| {label} | {100 * mean:.2f} {spread} "
            f"| {', '.join(f'{t:g}' for t in taus) or '–'} "
            f"| {' | '.join(shots)} "
            f"| {'–' if ref is None else f'{100 * (1 - ref):.2f}'} |"
        )
    if len(done_seeds := [s for s in reports if any(reports[s].values())]) > 0:
        lines.append("")
        lines.append(
            f"Seeds: {', '.join(str(s) for s in done_seeds)}. τ column: the "
            "τ of the post-hoc rows (τ* chosen on the holdout, per seed)."
        )
    return lines


def plot(dataset: str, per_seed: dict, flags_obj, path: str) -> bool:
    """Per-class test accuracy of each row (mean over seeds), as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    counts = None
    curves = {}
    for label in PLOT_ROWS:
        values = []
        for entry in per_seed.values():
            report = row_reports(flags_obj, entry).get(label)
            if report is not None:
                values.append(
                    [np.nan if v is None else v for v in report["per_class_accuracy"]]
                )
        if values:
            curves[label] = np.nanmean(np.asarray(values, float), axis=0)
    for entry in per_seed.values():
        for metrics in entry["runs"].values():
            if metrics is not None and metrics.get("train_counts"):
                counts = metrics["train_counts"]
    if not curves:
        return False
    num_classes = len(next(iter(curves.values())))
    order = (
        np.argsort(-np.asarray(counts), kind="stable")
        if counts is not None
        else np.arange(num_classes)
    )
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=100)
    markers = "osD^vP"
    for (label, values), marker in zip(curves.items(), markers, strict=False):
        ax.plot(
            np.arange(num_classes),
            values[order],
            marker=marker if num_classes <= 20 else None,
            label=label,
            linewidth=1.2,
            markersize=4,
        )
    ax.set_xlabel(
        "class, by training frequency (head → tail)"
        + ("" if counts is None else "; tick: training images")
    )
    if counts is not None and num_classes <= 20:
        ax.set_xticks(np.arange(num_classes))
        ax.set_xticklabels([str(counts[i]) for i in order], fontsize=8)
    ax.set_ylabel("test accuracy of the class")
    ax.set_ylim(-0.02, 1.02)
    seeds = ", ".join(str(s) for s in per_seed)
    ax.set_title(f"{dataset}, per-class test accuracy (seeds {seeds})")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, format="png")
    plt.close(fig)
    return True
