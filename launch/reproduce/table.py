"""The Markdown table of one dataset: mean ± std over seeds of each row."""

from __future__ import annotations

import numpy as np

from la_keras.runs import reporting
from launch.reproduce import spec

HEADER = (
    "| Method | Balanced error (%) | τ | Many (%) | Medium (%) | Few (%) "
    "| Official release, balanced error (%) |"
)


def row_report(row: spec.Row, seed_entry: dict) -> dict | None:
    """The test report a row reads from one seed's runs (None if missing)."""
    if row.source == "wn":
        report = (seed_entry.get("wn") or {}).get(row.run)
        return (report or {}).get(row.key)
    metrics = seed_entry["runs"].get(row.run)
    return None if metrics is None else metrics["test"].get(row.key)


def row_reports(flags_obj, seed_entry: dict) -> dict:
    """Row label -> the test report of that row (None when missing)."""
    return {
        row.label: row_report(row, seed_entry)
        for row in spec.rows_for(flags_obj.methods)
    }


def mean_std(values) -> tuple[float, float | None]:
    """Mean and sample std (None for one value), in float64."""
    values = np.asarray(values, dtype=np.float64)
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return float(np.mean(values)), std


def pct(value) -> str:
    return "n/a" if value is None else f"{100 * value:.2f}"


def table(flags_obj, dataset: str, per_seed: dict) -> list[str]:
    """The Markdown table of one dataset, then a line naming the seeds."""
    official = spec.OFFICIAL.get(
        spec.source_dataset(dataset).replace("-", "_"), {}
    )
    lines = [HEADER, "|:--|--:|--:|--:|--:|--:|--:|"]
    reports = {seed: row_reports(flags_obj, e) for seed, e in per_seed.items()}
    for row in spec.rows_for(flags_obj.methods):
        done = [r[row.label] for r in reports.values() if r.get(row.label)]
        if not done:
            why = "not run" if flags_obj.report_only else "not run (failed)"
            lines.append(f"| {row.label} | {why} | | | | | |")
            continue
        mean, std = mean_std([1 - r["balanced_accuracy"] for r in done])
        spread = (
            f"± {100 * std:.2f}"
            if std is not None
            else f"± n/a ({len(done)} seed)"
        )
        taus = sorted({r["tau"] for r in done if "tau" in r})
        shots = []
        for shot in reporting.SHOTS:
            values = [r[shot] for r in done if r[shot] is not None]
            shots.append(pct(np.mean(values)) if values else "n/a")
        ref = official.get(row.official) if row.official else None
        lines.append(
            f"| {row.label} | {100 * mean:.2f} {spread} "
            f"| {', '.join(f'{t:g}' for t in taus) or '–'} "
            f"| {' | '.join(shots)} "
            f"| {'–' if ref is None else pct(1 - ref)} |"
        )
    done_seeds = [s for s in reports if any(reports[s].values())]
    if done_seeds:
        lines += [
            "",
            f"Seeds: {', '.join(str(s) for s in done_seeds)}. τ column: the "
            "τ of the post-hoc and weight-normalisation rows (τ* chosen on "
            "the holdout, per seed).",
        ]
    return lines


def per_class_mean(label: str, flags_obj, per_seed: dict):
    """Per-class test accuracy of a row, mean over seeds; None if not run."""
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
    if not values:
        return None
    return np.nanmean(np.asarray(values, np.float64), axis=0).tolist()
