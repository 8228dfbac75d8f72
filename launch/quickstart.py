"""A short, real CIFAR-10-LT run in loss and baseline modes, compared.

    TFDS_DATA_DIR=../shared/tfds python -m launch.quickstart

Trains the classic ResNet-8 on CIFAR-10-LT (TFDS `cifar10`, EXP profile,
imbalance 100, 10% of it held out for tau) for a few epochs with a
compressed version of the official schedule (linear warm-up for 1 epoch,
x0.1 for the last one), once with the logit-adjusted loss (`--mode=loss`)
and once with plain cross-entropy (`--mode=baseline`), then prints test
top-1, balanced and many/medium/few-shot accuracy of both, with the
baseline's post-hoc adjusted logits (tau=1) as a third row, and the
SavedModel paths. It takes a few minutes on a 2-core CPU (XLA on).
Each run is a normal `launch.train` run under --quickstart_dir (rerunning
resumes / reuses them).
"""

from __future__ import annotations

import os
import time

from absl import app
from absl import flags
from absl import logging

from launch import common_flags
from launch import train

_MODES = ("loss", "baseline")


def define_flags() -> None:
    common_flags.define_flags()
    if "quickstart_dir" in flags.FLAGS:
        return
    flags.DEFINE_string(
        "quickstart_dir", "quickstart_runs", "Where the two runs are written."
    )


# The quickstart's settings; any of them can be overridden on the command
# line (e.g. --epochs=10 --model=resnet20).
DEFAULTS = dict(
    dataset="cifar10_lt",
    model="resnet8",
    train_batch_size=128,
    test_batch_size=500,
    epochs=5,
    base_learning_rate=0.1,
    warmup_epochs=1.0,
    lr_decay_epochs=["4"],
    lr_decay_multipliers=["0.1"],
    eval_every_epochs=1000,
    jit_compile=True,
)


def run(flags_obj) -> dict:
    """Trains both modes; returns {mode: metrics}."""
    for name, value in DEFAULTS.items():
        if flags_obj[name].using_default_value:
            flags_obj[name].value = value
    results = {}
    for mode in _MODES:
        model_dir = os.path.join(flags_obj.quickstart_dir, mode)
        flags_obj.mode = mode
        flags_obj.model_dir = model_dir
        flags_obj.tb_log_dir = os.path.join(model_dir, "log")
        flags_obj.export_dir = None
        start = time.time()
        results[mode] = train.run(flags_obj)
        results[mode]["seconds"] = time.time() - start
        logging.info("mode=%s done in %.0f s.", mode, results[mode]["seconds"])
    return results


def format_table(results: dict) -> str:
    """The comparison table printed by the quickstart."""
    rows = [
        ("loss (logit-adjusted loss)", results["loss"]["test"]["raw"]),
        ("baseline (cross-entropy)", results["baseline"]["test"]["raw"]),
        (
            "baseline + post-hoc (tau=1)",
            results["baseline"]["test"]["adjusted"],
        ),
    ]
    columns = ("top1", "balanced_accuracy", "many", "medium", "few")
    header = f"{'CIFAR-10-LT test accuracy':30s}" + "".join(
        f"{name:>10s}"
        for name in ("top-1", "balanced", "many", "medium", "few")
    )
    lines = [header, "-" * len(header)]
    for name, report in rows:
        cells = (report[c] for c in columns)
        lines.append(
            f"{name:30s}"
            + "".join(
                f"{'n/a':>10s}" if v is None else f"{v:10.4f}" for v in cells
            )
        )
    lines.append("")
    for mode in _MODES:
        lines.append(
            f"{mode:8s} SavedModel: {results[mode]['export_dir']}  "
            f"(trained in {results[mode]['seconds']:.0f} s)"
        )
    return "\n".join(lines)


def main(_):
    results = run(flags.FLAGS)
    print(format_table(results))  # the quickstart's output


if __name__ == "__main__":
    define_flags()
    app.run(main)
