"""A short, real CIFAR-10-LT run in loss and baseline modes, compared.

    TFDS_DATA_DIR=../shared/tfds python -m launch.quickstart

Trains the classic ResNet-8 on CIFAR-10-LT (TFDS `cifar10`, EXP profile,
imbalance 100, all 12,406 images) for a few epochs with a compressed
version of the official schedule (linear warm-up for 1 epoch, x0.1 for the
last one), once with the logit-adjusted loss (`--mode=loss`) and once with
plain cross-entropy (`--mode=baseline`), then prints a table of test
accuracy of both, with the baseline's post-hoc adjusted logits (tau=1) as a
third row, and the SavedModel paths. Each run is a normal `launch.train`
run under --quickstart_dir (rerunning resumes / reuses them); any training
flag overrides the quickstart's settings (e.g. `--epochs=10`).
"""

from __future__ import annotations

import os
import time

from absl import flags

from la_keras.runs.resolve import default_loss
from la_keras.runs.resolved import ResolvedConfig
from launch import cli
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
)


def configs(flags_obj) -> dict[str, ResolvedConfig]:
    """The `ResolvedConfig` of each mode: the flags over `DEFAULTS`.

    `--loss` (default: the logit-adjusted loss) is the loss-mode run's; the
    baseline is always plain cross-entropy on a dense head (ERM).
    """
    for name, value in DEFAULTS.items():
        if flags_obj[name].using_default_value:
            flags_obj[name].value = value
    flags_obj["mode"].value = "loss"  # the loss run's; --loss resolved in it
    trained = ResolvedConfig.from_flags(flags_obj)
    baseline = trained.replace(
        mode="baseline",
        loss=default_loss("baseline"),
        loss_options={},
        classifier="dense",
    )
    out = {}
    for mode, config in zip(_MODES, (trained, baseline), strict=True):
        model_dir = os.path.join(flags_obj.quickstart_dir, mode)
        out[mode] = config.replace(
            model_dir=model_dir,
            tb_log_dir=os.path.join(model_dir, "log"),
            export_dir=os.path.join(model_dir, "export"),
        )
    return out


def run(flags_obj) -> dict:
    """Trains both modes; returns {mode: metrics}."""
    results = {}
    for mode, config in configs(flags_obj).items():
        print(f"Training mode={mode} ({config.loss}) in {config.model_dir}")
        start = time.time()
        results[mode] = train.run(config, flags_obj=flags_obj)
        results[mode]["seconds"] = time.time() - start
    return results


_DATASET_TITLES = {"cifar10_lt": "CIFAR-10-LT", "cifar10-lt": "CIFAR-10-LT"}
_COLUMNS = (
    ("top1", "top-1"),
    ("balanced_accuracy", "balanced"),
    ("many", "many"),
    ("medium", "medium"),
    ("few", "few"),
)


def format_table(results: dict) -> str:
    """The comparison table printed by the quickstart.

    A column equal to top-1 in every row (balanced accuracy on a balanced
    test set) or empty in every row (a shot group with no class) is left
    out, and a note under the table says why.
    """
    rows = [
        ("loss (logit-adjusted loss)", results["loss"]["test"]["raw"]),
        ("baseline (cross-entropy)", results["baseline"]["test"]["raw"]),
        (
            "baseline + post-hoc (tau=1)",
            results["baseline"]["test"]["adjusted"],
        ),
    ]
    columns, notes = [], []
    for key, title in _COLUMNS:
        values = [report[key] for _, report in rows]
        if all(v is None for v in values):
            notes.append(
                f"{title}: no class of the training set is {key}-shot."
            )
        elif key != "top1" and all(
            v is not None and abs(v - r["top1"]) < 1e-6
            for v, (_, r) in zip(values, rows, strict=True)
        ):
            notes.append(
                f"{title}: equal to top-1, as the test set is balanced "
                "(the same number of images per class)."
            )
        else:
            columns.append((key, title))
    dataset = _DATASET_TITLES.get(results["loss"].get("dataset"), "")
    title = f"{dataset} test accuracy".strip()
    header = f"{title:30s}" + "".join(f"{title:>10s}" for _, title in columns)
    lines = [header, "-" * len(header)]
    for name, report in rows:
        lines.append(
            f"{name:30s}"
            + "".join(
                f"{'n/a':>10s}" if report[k] is None else f"{report[k]:10.4f}"
                for k, _ in columns
            )
        )
    lines += [f"(not shown: {note})" for note in notes]
    lines.append("")
    for mode in _MODES:
        result = results[mode]
        # A JAX run writes a .keras model; launch.export makes the SavedModel.
        saved = (
            f"SavedModel: {result['export_dir']}"
            if result.get("export_dir")
            else f"Keras model: {result.get('keras_model')}"
        )
        lines.append(
            f"{mode:8s} {saved}  (trained in {result['seconds']:.0f} s)"
        )
    return "\n".join(lines)


def main(_):
    def quickstart():
        results = run(flags.FLAGS)
        print()
        print(format_table(results))  # the quickstart's report

    cli.run_main("launch.quickstart", quickstart)


if __name__ == "__main__":
    define_flags()
    cli.app_run(main)
