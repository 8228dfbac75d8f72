"""Flags and the entry point of `python -m launch.reproduce`."""

from __future__ import annotations

import sys
import time

from absl import app
from absl import flags
from absl import logging

from launch.reproduce import report
from launch.reproduce import runner
from launch.reproduce import spec


def define_flags() -> None:
    """Declares the flags of launch.reproduce (idempotent per process)."""
    if "budget" in flags.FLAGS:
        return
    flags.DEFINE_list(
        "datasets",
        ["cifar10_lt", "cifar100_lt"],
        "Datasets (launch.train --dataset values).",
    )
    flags.DEFINE_list(
        "methods",
        list(spec.METHODS),
        f"Rows to produce, from: {', '.join(spec.METHODS)}.",
    )
    flags.DEFINE_list("seeds", ["0"], "Seeds; the table shows mean ± std.")
    flags.DEFINE_enum(
        "budget", "short", list(spec.BUDGETS), "See launch.reproduce."
    )
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
        "A flag appended to every launch.train command, e.g. --epochs=12 "
        "(not --holdout_fraction: the spec sets it per run).",
    )
    flags.DEFINE_float(
        "ldam_scale",
        None,
        "The --ldam_s of the LDAM run: its logit scale. Default: the loss's "
        "own, Cao et al.'s s=30, on the cosine classifier that "
        "--loss=ldam selects (--classifier=auto).",
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


def run(flags_obj) -> tuple[str, list[str]]:
    """Runs what is missing and writes RESULTS.md.

    Returns:
        The RESULTS.md path and the failed runs (see `runner.run_all`).
    """
    spec.check(flags_obj)
    start = time.time()
    results, failed = runner.run_all(flags_obj)
    path = report.write_results(flags_obj, results, time.time() - start)
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
