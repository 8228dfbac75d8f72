"""Runs the trainings and evaluations of the spec as subprocesses.

Every run is `python -m launch.train` in `<output_dir>/<dataset>/seed<k>/
<run>`, logging to `train.log` there, so a crash stays in its run. A run
that wrote metrics.json is skipped; the others resume from their
checkpoints (launch.train resumes in its model_dir). Each run folder also
gets `wall_time.json` (seconds per module, summed over invocations) and
`reproduce.json` (the budget, the command lines, and the machine and
library versions of every invocation), which the report reads.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import sys
import time

from absl import logging

from la_keras.runs import reporting
from launch.reproduce import machine
from launch.reproduce import plan
from launch.reproduce import spec

WALL_TIME = "wall_time.json"
RECORD = "reproduce.json"
WEIGHT_NORM = "weight_norm.json"


def read_json(path: str):
    """The JSON at `path`, None when there is no file."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


@functools.lru_cache(maxsize=1)
def _environment() -> dict:
    return machine.describe()


def record(run_dir: str, budget: str, module: str, args: list[str]) -> None:
    """Adds the command and this machine to `run_dir/reproduce.json`."""
    path = os.path.join(run_dir, RECORD)
    data = read_json(path) or {}
    data["budget"] = budget
    data.setdefault("commands", {})[module] = list(args)
    environments = data.setdefault("environments", [])
    if _environment() not in environments:
        environments.append(_environment())
    reporting.write_json(data, path)


def run_subprocess(
    module: str,
    args: list[str],
    run_dir: str,
    budget: str,
    progress: plan.TrainingProgress | None = None,
) -> bool:
    """Runs `python -m module args`, logging to run_dir; True on success.

    Adds the wall time to `run_dir/wall_time.json` (kept across reruns) and
    the command and machine to `run_dir/reproduce.json`. Every output line
    goes to the log; `progress`, if given, also reads them (its bar).
    """
    os.makedirs(run_dir, exist_ok=True)
    record(run_dir, budget, module, args)
    log_path = os.path.join(run_dir, f"{module.split('.')[-1]}.log")
    logging.info("python -m %s %s  (log: %s)", module, " ".join(args), log_path)
    start = time.time()
    with (
        open(log_path, "a") as log,
        subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
        ) as child,
    ):
        for line in child.stdout:
            log.write(line)
            if progress is not None and progress.feed(line):
                log.flush()
        returncode = child.wait()
    if progress is not None:
        progress.finish()
    elapsed = time.time() - start
    timing = read_json(os.path.join(run_dir, WALL_TIME)) or {}
    timing[module] = timing.get(module, 0.0) + elapsed
    reporting.write_json(timing, os.path.join(run_dir, WALL_TIME))
    if returncode:
        logging.error(
            "python -m %s failed (exit %d) after %s; see %s.",
            module, returncode, reporting.hms(elapsed), log_path,
        )  # fmt: skip
    else:
        logging.info("python -m %s done in %s.", module, reporting.hms(elapsed))
    return returncode == 0


def run_all(flags_obj) -> tuple[dict, list[str]]:
    """Trains and evaluates what is missing; returns the collected results.

    Returns:
        `(results, failed)`: `{dataset: {seed: {"runs": {run: metrics or
        None}, "wn": {run: weight-norm report or None}, "dirs": {run:
        dir}}}}` and the run directories (or logs) of the subprocesses that
        failed.
    """
    runs = spec.runs_for(flags_obj.methods)
    results, failed = {}, []
    trainings = _plan(flags_obj, runs)
    logging.info("%s", plan.plan_text(list(trainings.values())))
    for dataset in flags_obj.datasets:
        spec.budget_flags(flags_obj.budget, dataset)  # fail early
        results[dataset] = {}
        for seed in (int(s) for s in flags_obj.seeds):
            entry = {"runs": {}, "wn": {}, "dirs": {}}
            for run in runs:
                run_dir = _run_dir(flags_obj, dataset, seed, run)
                entry["dirs"][run] = run_dir
                metrics = _train(
                    flags_obj, dataset, seed, run, run_dir, failed,
                    _progress(flags_obj, trainings, (dataset, seed, run)),
                )  # fmt: skip
                entry["runs"][run] = metrics
                if run in spec.WEIGHT_NORM_RUNS and metrics is not None:
                    if "weight_norm" in flags_obj.methods:
                        entry["wn"][run] = _weight_norm(
                            flags_obj, dataset, run_dir, failed
                        )
            results[dataset][seed] = entry
    return results, failed


def _plan(flags_obj, runs) -> dict:
    """`{(dataset, seed, run): plan.Training}` in the order they run."""
    trainings = {}
    for dataset in flags_obj.datasets:
        epochs = int(_budget_value(flags_obj, dataset, "epochs"))
        for seed in (int(s) for s in flags_obj.seeds):
            for run in runs:
                run_dir = _run_dir(flags_obj, dataset, seed, run)
                trainings[(dataset, seed, run)] = plan.Training(
                    label=f"{dataset} seed {seed} {run}",
                    epochs=epochs,
                    examples=spec.train_examples(
                        dataset, seed, spec.holdout_fraction(run)
                    ),
                    finished=os.path.exists(
                        os.path.join(run_dir, "metrics.json")
                    ),
                )
    return trainings


def _budget_value(flags_obj, dataset: str, name: str) -> str:
    """--name of the budget, or of the last --train_flag=--name=..."""
    value = spec.flagfile_value(
        spec.budget_flagfile(flags_obj.budget, dataset), name
    )
    for flag in flags_obj.train_flag:
        if flag.startswith(f"--{name}="):
            value = flag.split("=", 1)[1]
    return value


def _progress(flags_obj, trainings: dict, key) -> plan.TrainingProgress:
    """The progress of one training, with the images of those after it."""
    keys = list(trainings)
    after = [trainings[k] for k in keys[keys.index(key) + 1 :]]
    images = [t.images for t in after if not t.finished]
    return plan.TrainingProgress(
        trainings[key].label,
        # 128: launch.train's default, for a flagfile that gives none.
        int(_budget_value(flags_obj, key[0], "train_batch_size") or 128),
        None if None in images else sum(images),
    )


def _run_dir(flags_obj, dataset: str, seed: int, run: str) -> str:
    return os.path.join(
        flags_obj.output_dir, spec.dataset_dir_name(dataset), f"seed{seed}", run
    )


def _train(
    flags_obj, dataset, seed, run, run_dir, failed, progress=None
) -> dict | None:
    metrics_path = os.path.join(run_dir, "metrics.json")
    if os.path.exists(metrics_path):
        logging.info("Skipping %s: %s exists.", run, metrics_path)
        _check_holdout(run, run_dir)
    elif flags_obj.report_only:
        logging.info("Not running %s (--report_only).", run)
    elif not run_subprocess(
        "launch.train",
        spec.train_args(flags_obj, dataset, seed, run, run_dir),
        run_dir,
        flags_obj.budget,
        progress,
    ):
        failed.append(run_dir)
    return read_json(metrics_path)


def _check_holdout(run: str, run_dir: str) -> None:
    config = read_json(os.path.join(run_dir, "flags.json")) or {}
    recorded = config.get("holdout_fraction")
    if recorded is not None and recorded != spec.holdout_fraction(run):
        logging.warning(
            "%s trained with holdout_fraction=%g, the spec gives %s %g; "
            "RESULTS.md reports the data it was trained on. Delete the run "
            "folder to retrain it.",
            run_dir, recorded, run, spec.holdout_fraction(run),
        )  # fmt: skip


def _weight_norm(flags_obj, dataset, run_dir, failed) -> dict | None:
    path = os.path.join(run_dir, WEIGHT_NORM)
    if not os.path.exists(path) and not flags_obj.report_only:
        if not run_subprocess(
            "launch.evaluate",
            spec.evaluate_args(run_dir, path, dataset),
            run_dir,
            flags_obj.budget,
        ):
            failed.append(os.path.join(run_dir, "evaluate.log"))
    report = read_json(path)
    return None if report is None else report.get("weight_norm")
