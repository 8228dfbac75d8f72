"""Fine-tuning a pretrained backbone vs training from scratch, on CIFAR-10-LT.

    TFDS_DATA_DIR=../shared/tfds python bench/bench_finetune.py \
        --pretrained=../shared/pretrained/mobilenet_2_5_224_tf_no_top.h5 \
        --output_dir=/tmp/finetune_table

Runs `launch.train` once per row, one after the other, and prints one
markdown table (the one in RESULTS.md):

- MobileNet v1 (alpha 0.25, Keras's ImageNet weights) at `--image_size`,
  LIFT's short recipe (`la_keras.runs.recipes.LIFT_DEFAULTS`: SGD momentum
  0.9, lr 0.01 cosine to 0, batch 128, weight decay 5e-4) for `--epochs`,
  for each `--finetune` mode: the logit-adjusted loss (`--mode=loss`) and
  plain cross-entropy (`--mode=posthoc`, whose run also gives the post-hoc
  adjusted row, tau = 1);
- the official ResNet-32 from random weights with the logit-adjusted loss,
  given the wall time of the full fine-tuning with it (its epoch count from
  a one-epoch probe's speed; the official schedule scaled to them).

Each row: balanced accuracy, many / medium / few (CIFAR-10-LT has no class
under 20 images: few is n/a), the training's wall time (steps x batch /
images/s: the evaluations between epochs left out) and the trainable
parameters. Runs already finished in `--output_dir` are read, not trained
again (launch.train resumes a finished run without a step), so an
interrupted table continues where it stopped.

The machine may be shared: the accuracies do not depend on it, the times
do; the script prints the load average before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODES = ("full", "linear", "lora", "bn", "bitfit", "lora_bn", "ssf")


def _train(name, args, output_dir, log):
    model_dir = os.path.join(output_dir, name)
    metrics_path = os.path.join(model_dir, "metrics.json")
    if not os.path.exists(metrics_path):
        command = [
            sys.executable, "-m", "launch.train", "--dataset=cifar10_lt",
            f"--model_dir={model_dir}", f"--tb_log_dir={model_dir}/log",
            "--eval_every_epochs=1000", *args,
        ]  # fmt: skip
        start = time.time()
        with open(os.path.join(output_dir, f"{name}.log"), "w") as out:
            result = subprocess.run(
                command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT
            )
        if result.returncode != 0:
            raise SystemExit(
                f"{name} failed (exit {result.returncode}): see "
                f"{output_dir}/{name}.log"
            )
        log(f"{name}: {time.time() - start:.0f} s")
    with open(metrics_path) as f:
        return json.load(f)


def _train_seconds(metrics):
    return metrics["step"] * 128 / metrics["images_per_second"]


def _row(label, metrics, key="raw"):
    test = metrics["test"][key]

    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    params = metrics.get("parameters", {}).get("trainable")
    return (
        f"| {label} | **{test['balanced_accuracy']:.3f}** | "
        f"{fmt(test['many'])} | {fmt(test['medium'])} | {fmt(test['few'])} | "
        f"{_train_seconds(metrics) / 60:.1f} | "
        f"{'' if params is None else f'{params:,}'} |"
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pretrained", required=True)
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--lora_rank", type=int, default=8)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--no_scratch", action="store_true")
    parser.add_argument(
        "--train_flag",
        action="append",
        default=[],
        help="A flag for every fine-tuning run (e.g. "
        "--train_flag=--base_learning_rate=0.05), repeatable.",
    )
    parser.add_argument(
        "--tag", default="", help="Appended to the runs' folder names."
    )
    args = parser.parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)

    def log(line):
        print(line, flush=True)

    log(f"load average before: {os.getloadavg()}")
    common = [
        "--model=mobilenet", "--model_width=0.25",
        f"--pretrained={os.path.abspath(args.pretrained)}",
        f"--image_size={args.image_size}", f"--epochs={args.epochs}",
        f"--lora_rank={args.lora_rank}", *args.train_flag,
    ]  # fmt: skip
    rows = []
    full_la = None
    for mode in args.modes.split(","):
        tuned = [*common, f"--finetune={mode}"]
        la = _train(
            f"{mode}_la{args.tag}",
            [*tuned, "--mode=loss"],
            args.output_dir,
            log,
        )
        ce = _train(
            f"{mode}_ce{args.tag}",
            [*tuned, "--mode=posthoc", "--loss=crossentropy"],
            args.output_dir,
            log,
        )
        full_la = la if mode == "full" else full_la
        rows += [
            _row(f"{mode}, logit-adjusted loss", la),
            _row(f"{mode}, cross-entropy", ce),
            _row(f"{mode}, cross-entropy + post-hoc (tau 1)", ce, "adjusted"),
        ]
    if full_la is not None and not args.no_scratch:
        probe = _train(
            "scratch_probe",
            ["--model=official_resnet32", "--mode=loss", "--epochs=1"],
            args.output_dir,
            log,
        )
        seconds_per_epoch = _train_seconds(probe)
        epochs = max(1, round(_train_seconds(full_la) / seconds_per_epoch))
        scratch = _train(
            "scratch",
            ["--model=official_resnet32", "--mode=loss", f"--epochs={epochs}"],
            args.output_dir,
            log,
        )
        rows.append(
            _row(
                f"official ResNet-32 from scratch, logit-adjusted loss, "
                f"{epochs} epochs",
                scratch,
            )
        )
    log(f"load average after: {os.getloadavg()}")
    print()
    print(
        f"MobileNet v1 0.25 (ImageNet weights), {args.image_size}x"
        f"{args.image_size}, {args.epochs} epochs, LoRA rank {args.lora_rank}"
        + "".join(f", {flag}" for flag in args.train_flag)
    )
    print()
    print(
        "| training | balanced acc. | many | medium | few | train min | "
        "trainable parameters |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
