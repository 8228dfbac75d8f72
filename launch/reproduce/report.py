"""RESULTS.md and its per-class plots, from the run folders.

The prose here is general (what a row means); every number about a run
(budget, data sizes, τ grids, wall times, images/s, machine, versions, the
table) is read from the runs by `facts` and `table`, and the official
release's figures from `spec.OFFICIAL`.
"""

from __future__ import annotations

import inspect
import os
import time

from la_keras import losses
from la_keras.runs import plots
from la_keras.runs import reporting
from la_keras.training import evaluation
from launch.reproduce import facts
from launch.reproduce import machine
from launch.reproduce import spec
from launch.reproduce import table

TITLE = "# Long-tail learning via logit adjustment: the main table, reproduced"


def write_results(flags_obj, results: dict, total_wall: float) -> str:
    """Writes RESULTS.md and the plots; returns the RESULTS.md path."""
    path = flags_obj.results_md or os.path.join(
        flags_obj.output_dir, "RESULTS.md"
    )
    root = os.path.dirname(os.path.abspath(path))
    lines = [TITLE, "", _invocation(flags_obj), "", *_definitions(), ""]
    all_runs = []
    for dataset, per_seed in results.items():
        runs = {
            seed: {
                run: facts.load_run(run_dir, entry["runs"].get(run), dataset)
                for run, run_dir in entry["dirs"].items()
            }
            for seed, entry in per_seed.items()
        }
        all_runs += [run for by_run in runs.values() for run in by_run.values()]
        source = spec.source_dataset(dataset)
        title = dataset if source == dataset else f"{source} ({dataset})"
        lines += [f"## {title}", ""]
        lines += table.table(flags_obj, dataset, per_seed)
        lines.append("")
        lines += _plots(flags_obj, dataset, per_seed, runs, root)
        lines += _details(flags_obj, dataset, per_seed, runs)
    lines += _hardware_and_time(flags_obj, all_runs, total_wall)
    lines += _budgets()
    os.makedirs(root, exist_ok=True)
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path


def _invocation(flags_obj) -> str:
    values = (
        ("datasets", ",".join(flags_obj.datasets)),
        ("methods", ",".join(flags_obj.methods)),
        ("seeds", ",".join(flags_obj.seeds)),
        ("budget", flags_obj.budget),
    )
    command = " ".join(f"--{name}={value}" for name, value in values)
    command += "".join(f" --train_flag={f}" for f in flags_obj.train_flag)
    if flags_obj.report_only:
        command += " --report_only"
    return (
        f"Written by `python -m launch.reproduce {command}` on "
        f"{time.strftime('%Y-%m-%d', time.gmtime())}."
    )


def _definitions() -> list[str]:
    defaults = inspect.signature(evaluation.classification_report).parameters
    many = defaults["many_threshold"].default
    few = defaults["few_threshold"].default
    published = "; ".join(
        f"{spec.OFFICIAL_LABELS[key]} "
        + " / ".join(f"{spec.OFFICIAL[d][key]:g}" for d in spec.OFFICIAL)
        for key in spec.OFFICIAL_LABELS
    )
    return [
        "Balanced error = 1 − balanced accuracy (mean of the per-class test "
        "accuracies), in %, mean ± sample std over the seeds (no std for a "
        "single seed). Many / medium / few: mean test accuracy (%) of the "
        f"classes with > {many}, {few}–{many} and < {few} training images "
        "(n/a: no such class).",
        "",
        "The official release column converts the balanced accuracies "
        "published in the README of the official release (google-research "
        f"`logit_adjustment`, official TFRecords) to balanced error: "
        f"{published} on {' / '.join(spec.OFFICIAL)}; the release publishes "
        "no figure for the other rows. The paper's own main-table figures "
        "are left out: the spec holds only the release's published ones.",
    ]


def _plots(flags_obj, dataset, per_seed, runs, root) -> list[str]:
    """One per-class plot per training set; the Markdown that shows them."""
    lines = []
    for suffix, whole in (("", True), ("_holdout", False)):
        rows = [
            row
            for row in spec.rows_for(flags_obj.methods)
            if row.label in spec.PLOT_ROWS
            and (spec.holdout_fraction(row.run) == 0) == whole
        ]
        curves = {}
        for row in rows:
            values = table.per_class_mean(row.label, flags_obj, per_seed)
            if values is not None:
                curves[row.label] = values
        info = _first_info(runs, {row.run for row in rows})
        if not curves or info is None:
            continue
        name = spec.dataset_dir_name(dataset)
        png = os.path.join("results", f"{name}_per_class{suffix}.png")
        os.makedirs(os.path.join(root, "results"), exist_ok=True)
        data = "whole training set" if whole else "holdout run"
        seeds = ", ".join(str(s) for s in per_seed)
        plots.plot_per_class(
            info.train_counts,
            curves,
            os.path.join(root, png),
            f"{dataset}, {data}, seeds {seeds}",
        )
        alt = dataset if whole else f"{dataset}, holdout run"
        lines += [f"![per-class test accuracy, {alt}]({png})", ""]
    return lines


def _first_info(runs: dict, names: set):
    for by_run in runs.values():
        for name, run in by_run.items():
            if name in names and run["info"] is not None:
                return run["info"]
    return None


def _details(flags_obj, dataset: str, per_seed: dict, runs: dict) -> list[str]:
    finished = [
        run
        for by_run in runs.values()
        for run in by_run.values()
        if run["config"] is not None
    ]
    if not finished:
        return ["No run of this dataset finished.", ""]
    lines = ["Budget and data:", ""]
    budgets = {}
    for run in finished:
        key = (facts.budget(run), facts.schedule_text(run["config"]))
        budgets.setdefault(key, []).append(run["dir"])
    for (name, text), dirs in budgets.items():
        label = f"`{name}`" if name else "(not recorded)"
        where = "" if len(budgets) == 1 else f" (runs {', '.join(dirs)})"
        lines.append(f"- Budget {label}: {text}{where}.")
    config, info = finished[0]["config"], finished[0]["info"]
    prepared_text = facts.prepared_text(dataset)
    if prepared_text:
        lines.append(f"- Data: {prepared_text}; evaluated on the test split.")
    elif ":" in dataset and not dataset.startswith("tfds:"):
        # A folder or prepared file: long-tailed as it is.
        profile = "used as it is" + (
            ""
            if info is None
            else ", imbalance ratio "
            f"{info.train_counts.max() / max(info.train_counts.min(), 1):g}"
        )
    else:
        profile = (
            f"{config['profile']} profile, imbalance ratio {config['ratio']:g}"
        )
    if not prepared_text:
        lines.append(
            f"- Data: {dataset} ({profile}"
            + ("" if info is None else f", {info.num_classes} classes")
            + "); evaluated on the test split."
        )
    if flags_obj.data_note:
        lines.append(f"- {flags_obj.data_note}")
    lines += ["", "Rows, the run each reads, and its training data:", ""]
    lines += _rows_and_data(flags_obj, runs)
    lines += [
        "",
        *_method_notes(flags_obj, per_seed, runs),
        "",
        "Wall time:",
        "",
    ]
    for seed, by_run in runs.items():
        for name, run in by_run.items():
            text = facts.train_time_text(run)
            if text:
                lines.append(f"- `{name}`, seed {seed}: {text}.")
    lines.append("")
    return lines


def _rows_and_data(flags_obj, runs: dict) -> list[str]:
    lines = []
    for name in spec.runs_for(flags_obj.methods):
        labels = [
            row.label
            for row in spec.rows_for(flags_obj.methods)
            if row.run == name
        ]
        done = [by_run[name] for by_run in runs.values() if name in by_run]
        done = [run for run in done if run["config"] is not None]
        head = f"- `{name}` → {', '.join(labels)}."
        if not done:
            lines.append(f"{head} Not run.")
            continue
        config = done[0]["config"]
        flags_text = facts.flags_text(config, spec.run_flags(flags_obj, name))
        loss = losses.describe().get(config["loss"], config["loss"])
        if config.get("classifier") == "normed":
            loss += " on a cosine classifier (NormedDense)"
        lines.append(
            f"{head} `{flags_text}`. Loss: {loss}; hyperparameters not "
            f"given keep la_keras's defaults. {_data_text(done)}"
        )
    return lines


def _data_text(done: list[dict]) -> str:
    """Images trained on and held out, per seed, from the runs."""
    parts = []
    for run in done:
        seed = run["config"]["seed"]
        trained, held = facts.data_sizes(run)
        if trained is None:
            parts.append(f"Seed {seed}: data not loadable here.")
        elif not held:
            parts.append(
                f"Seed {seed}: trained on {trained} images, the whole "
                "long-tailed training set."
            )
        else:
            fraction = run["config"]["holdout_fraction"]
            parts.append(
                f"Seed {seed}: trained on {trained} images; {held} "
                f"({fraction:g} of each class) held out to choose τ*."
            )
    return " ".join(parts)


def _method_notes(flags_obj, per_seed: dict, runs: dict) -> list[str]:
    """What the post-hoc rows compute, with the τ grids the runs used."""
    wn_taus = next(
        (
            report["taus"]
            for entry in per_seed.values()
            for report in (entry.get("wn") or {}).values()
            if report
        ),
        None,
    )
    # The post-hoc τ grid of the run that chose τ* (else the baseline's).
    config = next(
        (
            by_run[name]["config"]
            for name in ("holdout", "baseline")
            for by_run in runs.values()
            if name in by_run and by_run[name]["config"]
        ),
        None,
    )
    lines = []
    if wn_taus is not None:
        lines.append(
            "- Weight normalisation (Kang et al. 2020) divides each class's "
            "classifier weights by ‖w_y‖^τ and drops the bias; τ* from "
            f"{{{', '.join(f'{t:g}' for t in wn_taus)}}}."
        )
    if config is not None and "la_posthoc" in flags_obj.methods:
        lines.append(
            "- Post-hoc logit adjustment subtracts τ·log π_y from the "
            "logits; τ* from "
            f"{{{', '.join(f'{t:g}' for t in config['tau_grid'])}}}."
        )
    if lines:
        lines.append(
            "- τ* maximises balanced accuracy on the holdout split, never "
            "on test."
        )
    return lines


def _hardware_and_time(flags_obj, runs: list, total_wall: float) -> list[str]:
    lines = ["## Hardware and time", ""]
    envs = facts.environments(runs)
    for env, dirs in envs:
        where = "" if len(envs) == 1 else f" (ran {', '.join(dirs)})"
        lines += [
            f"- {machine.hardware_text(env)}{where}.",
            f"- Libraries: {machine.versions_text(env)}.",
        ]
    if not envs:
        env = machine.describe()
        lines += [
            "- The runs recorded no machine. The machine writing this "
            f"file: {machine.hardware_text(env)}; "
            f"{machine.versions_text(env)}.",
        ]
    strategies = sorted(
        {run["config"]["strategy"] for run in runs if run["config"]}
    )
    if strategies:
        lines.append(f"- Distribution strategy: {', '.join(strategies)}.")
    summed = reporting.hms(facts.total_wall(runs))
    lines.append(
        f"- Wall time, all trainings and evaluations: {summed} (summed "
        "from the runs' wall_time.json"
        + (
            "; this file was written with --report_only)."
            if flags_obj.report_only
            else f"; this invocation of launch.reproduce: "
            f"{reporting.hms(total_wall)}, runs finished earlier are "
            "skipped and counted from their wall_time.json)."
        )
    )
    return lines + [""]


def _budgets() -> list[str]:
    lines = ["## Budgets", ""]
    for budget in spec.BUDGETS:
        datasets = list(spec.OFFICIAL) if budget == "full" else [None]
        for dataset in datasets:
            path = spec.budget_flagfile(budget, dataset or "")
            epochs = spec.flagfile_value(path, "epochs")
            name = os.path.relpath(path, os.path.dirname(spec.CONFIGS))
            lines.append(
                f"- `--budget={budget}`"
                + (f" ({dataset})" if dataset else "")
                + f": `launch/{name}`, {epochs} epochs."
            )
    lines += [
        "",
        "On a GPU machine, e.g.:",
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
    return lines
