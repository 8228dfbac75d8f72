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
  short  the official ResNet-32 and recipe on a schedule compressed to 4
         epochs, XLA (launch/configs/reproduce_short.cfg): about an hour
         for CIFAR-10-LT and one seed on a 2-core CPU (~45 images/s).
  full   the official schedules (launch/configs/cifar10_lt.cfg: 1241
         epochs, cifar100_lt.cfg: 1419 epochs). Run it on a GPU or TPU, e.g.
         `--budget=full --seeds=0,1,2 --train_flag=--strategy=mirrored`
         (or `--train_flag=--strategy=tpu --train_flag=--tpu=NAME`).

`--train_flag=--epochs=12` (repeatable) appends flags to every training
(e.g. `--train_flag=--data_dir=DIR`; by default TFDS_DATA_DIR is used).
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
# In the order they run: the runs of the paper's two methods first.
RUNS = {
    "baseline": ["--mode=posthoc"],
    "la_loss": ["--mode=loss", "--loss=logit_adjusted"],
    "ldam": ["--mode=loss", "--loss=ldam"],
    "equalized": ["--mode=loss", "--loss=equalized"],
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
        "methods",
        list(METHODS),
        f"Rows to produce, from: {', '.join(METHODS)}.",
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
    flags.DEFINE_multi_string(
        "train_flag",
        [],
        "A flag appended to every launch.train command, e.g. --epochs=12.",
    )
    flags.DEFINE_float(
        "ldam_scale",
        1.0,
        "The --ldam_s of the LDAM run: its logit scale. Cao et al.'s s=30 "
        "assumes a cosine classifier; on the ResNet's raw logits it diverges "
        "(measured: loss 1e15 within 62 steps), so s=1 is the default here.",
    )
    flags.DEFINE_bool(
        "report_only",
        False,
        "Write RESULTS.md from the finished runs only; train and evaluate "
        "nothing.",
    )
    flags.DEFINE_string(
        "data_note",
        "",
        "A sentence about the data for RESULTS.md (e.g. its provenance).",
    )


def budget_flags(budget: str, dataset: str) -> list[str]:
    """The --flagfile of a budget and dataset."""
    if budget == "full":
        # cifar10-lt (official TFRecords) and cifar10_lt (TFDS) share one.
        path = os.path.join(CONFIGS, f"{dataset.replace('-', '_')}.cfg")
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
        args.append(f"--ldam_s={flags_obj.ldam_scale}")
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


def run_all(flags_obj) -> tuple[dict, list[str]]:
    """Trains and evaluates what is missing; returns the collected results.

    Returns:
        `(results, failed)`: `{dataset: {seed: {"runs": {run: metrics or
        None}, "wn": report or None, "dirs": {run: dir}}}}` and the run
        directories (or logs) of the subprocesses that failed.
    """
    runs = sorted(
        {METHOD_RUN[m] for m in flags_obj.methods}, key=list(RUNS).index
    )
    results, failed = {}, []
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
                elif flags_obj.report_only:
                    logging.info("Not running %s (--report_only).", run)
                elif not run_subprocess(
                    "launch.train",
                    train_args(flags_obj, dataset, seed, run, run_dir),
                    run_dir,
                ):
                    failed.append(run_dir)
                entry["runs"][run] = _read_json(metrics_path)
                if run == "baseline" and "weight_norm" in flags_obj.methods:
                    entry["wn"] = _weight_norm(flags_obj, entry)
                    if (
                        entry["wn"] is None
                        and entry["runs"]["baseline"]
                        and not flags_obj.report_only
                    ):
                        failed.append(os.path.join(run_dir, "evaluate.log"))
            results[dataset][seed] = entry
    return results, failed


def _weight_norm(flags_obj, entry) -> dict | None:
    if entry["runs"].get("baseline") is None:
        return None
    run_dir = entry["dirs"]["baseline"]
    path = os.path.join(run_dir, "weight_norm.json")
    if not os.path.exists(path) and not flags_obj.report_only:
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
    official = OFFICIAL.get(dataset.replace("-", "_"), {})
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
            why = "not run" if flags_obj.report_only else "not run (failed)"
            lines.append(f"| {label} | {why} | | | | | |")
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
                    [
                        np.nan if v is None else v
                        for v in report["per_class_accuracy"]
                    ]
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


def _train_counts(config: dict):
    from la_keras import datasets

    _, info = datasets.load(
        config["dataset"],
        "train",
        config["dataset_dir"],
        ratio=config["ratio"],
        profile=config["profile"],
        holdout_fraction=config["holdout_fraction"],
        seed=config["seed"],
    )
    return [int(c) for c in info.train_counts], info


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def _schedule_text(config: dict) -> str:
    (_, warmup), *decays = config["schedule"]
    steps = "".join(f", ×{m:g} from epoch {e:g}" for m, e in decays)
    return (
        f"{config['epochs']} epochs of {config['model']}, batch "
        f"{config['train_batch_size']}, SGD (momentum {config['momentum']:g}"
        f"{', Nesterov' if config['nesterov'] else ''}), weight decay "
        f"{config['weight_decay']:g}; learning rate "
        f"{config['base_learning_rate']:g} after a linear warm-up of "
        f"{warmup:g} epoch(s){steps}; XLA "
        f"{'on' if config['jit_compile'] else 'off'}"
    )


def _hms(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600:d} h {seconds // 60 % 60:02d} min {seconds % 60:02d} s"


def write_results(flags_obj, results: dict, total_wall: float) -> str:
    """Writes RESULTS.md and the plots; returns the RESULTS.md path."""
    path = flags_obj.results_md or os.path.join(
        flags_obj.output_dir, "RESULTS.md"
    )
    root = os.path.dirname(os.path.abspath(path))
    lines = [
        "# Long-tail learning via logit adjustment: the main table, reproduced",
        "",
        "Produced by `python -m launch.reproduce "
        + " ".join(
            f"--{name}={value}"
            for name, value in (
                ("datasets", ",".join(flags_obj.datasets)),
                ("methods", ",".join(flags_obj.methods)),
                ("seeds", ",".join(flags_obj.seeds)),
                ("budget", flags_obj.budget),
            )
        )
        + "".join(f" --train_flag={f}" for f in flags_obj.train_flag)
        + f"` on {time.strftime('%Y-%m-%d', time.gmtime())}.",
        "",
        "Balanced error = 1 − balanced accuracy (mean of the per-class test "
        "accuracies), in %, mean ± sample std over the seeds (no std for a "
        "single seed). Many / medium / few: mean test accuracy (%) of the "
        "classes with > 100, 20–100 and < 20 training images (n/a: no such "
        "class). The official release column converts the balanced "
        "accuracies published in its README (google-research "
        "`logit_adjustment`, one GPU run each on the official TFRecords, "
        "full schedule) to balanced error: ERM 0.7136 / 0.3987, post-hoc "
        "(τ = 1) 0.7732 / 0.4407, loss 0.7789 / 0.4406 on CIFAR-10-LT / "
        "CIFAR-100-LT; the release publishes no figure for the other rows.",
        "",
        "The paper's own main-table figures are left out: no copy of the "
        "paper's table could be opened and checked from this machine (no "
        "internet), and numbers from memory are not reported.",
        "",
    ]
    total_runs_wall = 0.0
    for dataset, per_seed in results.items():
        lines += [f"## {dataset}", ""]
        lines += table(flags_obj, dataset, per_seed)
        lines.append("")
        config, counts, info = None, None, None
        for entry in per_seed.values():
            for run_dir in entry["dirs"].values():
                flags_json = os.path.join(run_dir, "flags.json")
                if config is None and os.path.exists(flags_json):
                    config = _read_json(flags_json)
                timing = _read_json(os.path.join(run_dir, "wall_time.json"))
                if timing:
                    total_runs_wall += sum(timing.values())
        if config is not None:
            counts, info = _train_counts(config)
            for entry in per_seed.values():
                for metrics in entry["runs"].values():
                    if metrics is not None:
                        metrics["train_counts"] = counts
        png = os.path.join("results", f"{dataset}_per_class.png")
        if plot(dataset, per_seed, flags_obj, os.path.join(root, png)):
            lines += [f"![per-class test accuracy, {dataset}]({png})", ""]
        lines += _details(flags_obj, dataset, per_seed, config, info)
    lines += [
        "## Hardware and time",
        "",
        f"- CPU: {_cpu()}, {os.cpu_count()} cores; no accelerator.",
        f"- Wall time, all trainings and evaluations: {_hms(total_runs_wall)} "
        + (
            "(summed from the runs' wall_time.json; this file was written "
            "with --report_only)."
            if flags_obj.report_only
            else f"(this invocation of launch.reproduce: {_hms(total_wall)}; "
            "runs finished earlier are skipped and counted from their "
            "wall_time.json)."
        ),
        "",
    ]
    lines += [
        "## The full budget (not run here)",
        "",
        "`--budget=full` trains with the official schedules "
        "(`launch/configs/cifar10_lt.cfg`: 1241 epochs, "
        "`launch/configs/cifar100_lt.cfg`: 1419 epochs; warm-up 20 / 22 epochs, "
        "×0.1 / ×0.01 / ×0.001 at the official decay epochs) on the "
        "TFDS-derived CIFAR-LT sets, 4 trainings per dataset and seed. Its "
        "wall time was not measured: no GPU or TPU was available here. On a "
        "GPU machine:",
        "",
        "```",
        "TFDS_DATA_DIR=... python -m launch.reproduce "
        "--datasets=cifar10_lt,cifar100_lt \\",
        "    --seeds=0,1,2 --budget=full --output_dir=runs/reproduce_full \\",
        "    --train_flag=--strategy=mirrored",
        "```",
        "",
        "On a TPU VM add `--train_flag=--strategy=tpu "
        "--train_flag=--tpu=NAME`. Interrupted runs resume from their "
        "checkpoints when the same command is run again.",
        "",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def _details(flags_obj, dataset, per_seed, config, info) -> list[str]:
    if config is None:
        return ["No run of this dataset finished.", ""]
    lines = ["Budget and data:", ""]
    lines.append(f"- Budget `{flags_obj.budget}`: {_schedule_text(config)}.")
    holdout = None
    for entry in per_seed.values():
        metrics = entry["runs"].get("baseline")
        if metrics and metrics.get("holdout"):
            holdout = metrics["holdout"]["num_examples"]
    if info is not None:
        lines.append(
            f"- Data: {dataset} ({info.num_classes} classes, "
            f"{config['profile']} profile, imbalance ratio "
            f"{config['ratio']:g}); trained on "
            f"{int(sum(info.train_counts))} images, "
            f"{holdout if holdout is not None else 'no'} held out "
            f"(class-stratified, {config['holdout_fraction']:g} of the "
            "long-tailed training set) to choose τ*; evaluated on the "
            "balanced test split. The official release trains on the whole "
            "long-tailed set."
        )
    if flags_obj.data_note:
        lines.append(f"- {flags_obj.data_note}")
    lines += [
        "- ERM, weight normalisation and post-hoc logit adjustment come from "
        "one cross-entropy run per seed (`--mode=posthoc`). Weight "
        "normalisation (Kang et al. 2020) divides each class's classifier "
        "weights by ‖w_y‖^τ and drops the bias, τ* from "
        f"{{{', '.join(WEIGHT_NORM_TAUS)}}}; post-hoc logit adjustment "
        "subtracts τ·log π_y, τ* from "
        f"{{{', '.join(f'{t:g}' for t in config['tau_grid'])}}}; both τ* "
        "maximise holdout balanced accuracy.",
        f"- Adaptive margin: LDAM (Cao et al. 2019), max margin 0.5, on the "
        f"network's plain logits with scale s = {flags_obj.ldam_scale:g}, no DRW. "
        "Cao et al. use s = 30 with a normalised (cosine) classifier; on "
        "plain logits s = 30 diverged here (training loss 7.9 → 1.5e15 "
        "within 62 steps at the warm-up learning rate), s = 1 trains.",
        "- Equalised loss: softmax equalisation loss (Tan et al. 2020), "
        "γ = 1, tail threshold λ = 1/C (la_keras defaults).",
        "- Logit-adjusted loss: τ = 1.",
        "",
    ]
    for seed, entry in per_seed.items():
        walls = []
        for run, run_dir in entry["dirs"].items():
            timing = _read_json(os.path.join(run_dir, "wall_time.json"))
            if timing:
                walls.append(f"{run} {_hms(sum(timing.values()))}")
        if walls:
            lines.append(f"Wall time, seed {seed}: {'; '.join(walls)}.")
    lines.append("")
    return lines


def run(flags_obj) -> tuple[str, list[str]]:
    """Runs what is missing and writes RESULTS.md.

    Returns:
        The RESULTS.md path and the failed runs (see `run_all`).
    """
    unknown = [m for m in flags_obj.methods if m not in METHODS]
    if unknown:
        raise app.UsageError(
            f"Unknown --methods {unknown}. Known: {', '.join(METHODS)}."
        )
    for seed in flags_obj.seeds:
        if not seed.isdigit():
            raise app.UsageError(f"--seeds must be integers, got {seed!r}.")
    start = time.time()
    results, failed = run_all(flags_obj)
    path = write_results(flags_obj, results, time.time() - start)
    logging.info("Wrote %s.", path)
    with open(path) as f:
        logging.info("\n%s", f.read())
    return path, failed


def main(_):
    try:
        _, failed = run(flags.FLAGS)
    except app.UsageError as e:
        sys.exit(f"launch.reproduce: error: {e}")
    if failed:
        sys.exit(
            f"launch.reproduce: {len(failed)} run(s) failed (rerun to retry "
            f"them): {', '.join(failed)}"
        )


if __name__ == "__main__":
    define_flags()
    app.run(main)
