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

from la_keras import runs
from la_keras.runs.comparison import MODES
from la_keras.runs.comparison import format_table
from la_keras.runs.parts.loss import LOSS_OPTIONS
from la_keras.runs.resolve import default_loss
from launch import cli
from launch import common_flags


def define_flags() -> None:
    common_flags.define_flags()
    if "quickstart_dir" in flags.FLAGS:
        return
    flags.DEFINE_string(
        "quickstart_dir", "quickstart_runs", "Where the two runs are written."
    )


# The quickstart's settings; any flag given overrides them (e.g. --epochs=10).
SETTINGS = os.path.join(os.path.dirname(__file__), "configs", "quickstart.cfg")


def settings() -> dict:
    """`{flag: value}` of `SETTINGS`, parsed as `launch.train` parses it."""
    values = flags.FlagValues()
    common_flags.define_flags(values)
    values(["launch.quickstart", f"--flagfile={SETTINGS}"])
    config = runs.RunConfig.from_flags(values)
    return {name: getattr(config, name) for name in config.given_fields}


def options(flags_obj) -> dict[str, runs.RunConfig]:
    """The `RunConfig` of each mode: the flags given over `SETTINGS`.

    `--loss` (default: the logit-adjusted loss) is the loss-mode run's; the
    baseline is always plain cross-entropy on a dense head (ERM).
    """
    given = runs.RunConfig.from_flags(flags_obj)
    values = settings()
    values.update({k: getattr(given, k) for k in given.given_fields})
    out = {}
    for mode in MODES:
        model_dir = os.path.join(flags_obj.quickstart_dir, mode)
        mode_values = dict(
            values,
            mode=mode,
            model_dir=model_dir,
            tb_log_dir=os.path.join(model_dir, "log"),
            export_dir=os.path.join(model_dir, "export"),
        )
        if mode == "baseline":
            mode_values.update(loss="crossentropy", classifier="dense")
            for name in LOSS_OPTIONS:
                mode_values.pop(name, None)
        out[mode] = runs.RunConfig(**mode_values)
    return out


def configs(flags_obj) -> dict[str, runs.ResolvedConfig]:
    """The resolved config of each mode (`options`)."""
    return {
        mode: runs.ResolvedConfig.resolve(config)
        for mode, config in options(flags_obj).items()
    }


def run(flags_obj) -> dict:
    """Trains both modes; returns {mode: metrics}."""
    results = {}
    for mode, config in options(flags_obj).items():
        loss = config.loss or default_loss(mode)
        print(f"Training mode={mode} ({loss}) in {config.model_dir}")
        start = time.time()
        results[mode] = runs.train(config)
        results[mode]["seconds"] = time.time() - start
    return results


def main(_):
    def quickstart():
        results = run(flags.FLAGS)
        print()
        print(format_table(results))  # the quickstart's report

    cli.run_main("launch.quickstart", quickstart)


if __name__ == "__main__":
    define_flags()
    cli.app_run(main)
