"""Final evaluation of a run: metrics.json, the per-class plot, summaries."""

from __future__ import annotations

import json
import os

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.framework import summary_pb2

from la_keras.adjustment import log_adjustment
from la_keras.training import evaluation

SHOTS = ("many", "medium", "few")
# TensorBoard's scalar plugin metadata: `tf.summary.scalar` needs the
# tensorboard package, which tensorflow-cpu does not install; `tf.summary.write`
# with this metadata writes the same event without it.
_SCALAR_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
).SerializeToString()


def scalar(name: str, value, step: int) -> None:
    """`tf.summary.scalar` without the tensorboard package."""
    tf.summary.write(
        name, tf.cast(value, tf.float32), step=step, metadata=_SCALAR_METADATA
    )


def evaluate_logits(
    config: dict,
    train_counts,
    priors,
    test: tuple[np.ndarray, np.ndarray],
    holdout: tuple[np.ndarray, np.ndarray] | None,
) -> dict:
    """Raw and post-hoc adjusted metrics on test; tau* chosen on the holdout.

    tau* is chosen on the holdout split only (never on test), by balanced
    accuracy over `config["tau_grid"]`; without a holdout it is absent and
    `holdout_warning` says why.
    """
    logits, labels = test
    tau = config["tau"]
    result = {
        "raw": evaluation.classification_report(logits, labels, train_counts),
        "adjusted": {
            "tau": tau,
            **evaluation.classification_report(
                logits, labels, train_counts, log_adjustment(priors, tau)
            ),
        },
    }
    metrics = {"test": result, "holdout": None}
    if holdout is not None:
        sweep = evaluation.sweep_tau(*holdout, priors, config["tau_grid"])
        tau_star = evaluation.select_tau(sweep)
        metrics["holdout"] = {
            "num_examples": int(len(holdout[1])),
            "tau_sweep": sweep,
            "tau_star": tau_star,
        }
        result["adjusted_tuned"] = {
            "tau": tau_star,
            **evaluation.classification_report(
                logits, labels, train_counts, log_adjustment(priors, tau_star)
            ),
        }
    elif config["mode"] == "posthoc":
        metrics["holdout_warning"] = (
            f"--dataset={config['dataset']} with --holdout_fraction=0 has no "
            "holdout split, so tau was not tuned (never on test); reporting "
            f"tau={tau} only. Pass --holdout_fraction>0 to tune it."
        )
    return metrics


def served_tau(config: dict, metrics: dict) -> float | None:
    """The tau baked into the SavedModel: posthoc only, tau* when tuned."""
    if config["mode"] != "posthoc":
        return None
    if metrics.get("holdout"):
        return metrics["holdout"]["tau_star"]
    return config["tau"]


def write_json(data: dict, path: str) -> None:
    with tf.io.gfile.GFile(path, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True, allow_nan=False)


def plot_per_class(train_counts, curves: dict, path: str, title: str) -> None:
    """Per-class test accuracy against training frequency (log x), as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    counts = np.asarray(train_counts, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for (label, values), marker in zip(curves.items(), "os^v", strict=False):
        values = np.array([np.nan if v is None else v for v in values], float)
        ax.scatter(
            np.maximum(counts, 0.5), values, label=label, marker=marker, s=18
        )
    ax.set_xscale("log")
    ax.set_xlabel("training images of the class (log scale)")
    ax.set_ylabel("test accuracy of the class")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    with tf.io.gfile.GFile(path, "wb") as f:
        fig.savefig(f, format="png")
    plt.close(fig)


def write_test_summaries(writer, metrics: dict, step: int, mode: str) -> None:
    """TensorBoard test/ scalars: official names plus balanced and shots."""
    raw = metrics["test"]["raw"]
    adjusted = metrics["test"]["adjusted"]
    with writer.as_default():
        scalar("accuracy", raw["top1"], step=step)
        if mode == "posthoc":
            scalar("logit-adjusted accuracy", adjusted["top1"], step=step)
        for prefix, report in (("", raw), ("logit-adjusted ", adjusted)):
            if prefix and mode != "posthoc":
                continue
            scalar(
                prefix + "balanced accuracy",
                report["balanced_accuracy"],
                step=step,
            )
            for shot in SHOTS:
                if report[shot] is not None:
                    scalar(f"{prefix}{shot} accuracy", report[shot], step=step)
    writer.flush()


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
        logging.warning("%s", metrics["holdout_warning"])


def _fmt(value) -> str:
    return "  n/a " if value is None else f"{value:.4f}"


def plot_path(model_dir: str) -> str:
    return os.path.join(model_dir, "per_class_accuracy.png")


def hms(seconds: float) -> str:
    """`H:MM:SS` of a duration in seconds."""
    seconds = int(seconds)
    return f"{seconds // 3600:d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
