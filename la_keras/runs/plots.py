"""The per-class plot of a run: test accuracy against training frequency."""

from __future__ import annotations

import io
import itertools
import os

import numpy as np

from la_keras.runs import outputs

# Classes named beside their points in the per-class plot, at most.
PLOT_NAMED_CLASSES = 30


def plot_per_class(
    train_counts, curves: dict, path: str, title: str, class_names=None
) -> None:
    """Per-class test accuracy against training frequency (log x), as PNG.

    With at most `PLOT_NAMED_CLASSES` classes, each point of the first
    curve is labelled with its class name. Written atomically
    (`la_keras.runs.outputs`).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    counts = np.asarray(train_counts, dtype=np.float64)
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for (label, values), marker in zip(
        curves.items(), itertools.cycle("os^vDP<>")
    ):
        values = np.array([np.nan if v is None else v for v in values], float)
        ax.scatter(
            np.maximum(counts, 0.5), values, label=label, marker=marker, s=18
        )
    first = next(iter(curves.values()), None)
    if class_names is not None and len(class_names) <= PLOT_NAMED_CLASSES:
        for name, x, y in zip(class_names, counts, first, strict=True):
            if y is not None:
                ax.annotate(
                    str(name), (max(x, 0.5), y), fontsize=6,
                    xytext=(3, 3), textcoords="offset points",
                )  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("training images of the class (log scale)")
    ax.set_ylabel("test accuracy of the class")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    plt.close(fig)
    outputs.write_bytes(path, buffer.getvalue())


def plot_run(config, info, metrics: dict) -> str:
    """The per-class plot of a finished run; returns its path."""
    curves = {"raw": metrics["test"]["raw"]["per_class_accuracy"]}
    for key in ("adjusted", "adjusted_tuned"):
        report = metrics["test"].get(key)
        if report is not None:
            label = f"adjusted (tau={report['tau']:g})"
            curves[label] = report["per_class_accuracy"]
    path = plot_path(config.model_dir)
    plot_per_class(
        info.train_counts,
        curves,
        path,
        f"{config.data.dataset} {config.model} mode={config.mode}",
        class_names=info.class_names,
    )
    return path


def plot_path(model_dir: str) -> str:
    return os.path.join(model_dir, "per_class_accuracy.png")
