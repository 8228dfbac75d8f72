"""Deploying a long-tail model where the class mix differs, and on TFLite.

    TFDS_DATA_DIR=/work/shared/tfds python bench/bench_deploy.py \
        --output_dir=/tmp/deploy_bench

Trains one MobileNet v1 0.25 (Keras's ImageNet weights, `--pretrained`,
default `../shared/pretrained/mobilenet_2_5_224_tf_no_top.h5` from the
repository root when it exists), fine-tuned in full on CIFAR-10-LT at
`--image_size` with plain cross-entropy and post-hoc adjustment
(`launch.train --mode=posthoc --loss=crossentropy --holdout_fraction=0.1`:
the holdout fits the calibration and tau*), or reads the run in
`--model_dir` (`--reuse`: never trains), then prints three tables:

1. For each test mix of `--mixes` (`launch.evaluate --test_prior`'s
   resampling of the balanced test split): top-1 of the balanced rule (the
   served tau*), of the EM estimate (BCTS fitted on the holdout) and of the
   oracle (the true mix). The logits are predicted once and resampled per
   mix through `la_keras.runs.adaptation.shifted_test_report`.
2. `launch.export --format=tflite` float and `--quantize=int8`: file size,
   latency of one image (`TFLiteClassifier`, batch 1, median of
   `--latency_runs`), top-1 agreement with the Keras model's served rule and
   balanced accuracy on the test split.
3. The targets, PASS or MISS.

The accuracies do not depend on the machine's load, the latencies do: the
load average is printed before and after.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

PRETRAINED = os.path.join(
    REPO, "..", "shared", "pretrained", "mobilenet_2_5_224_tf_no_top.h5"
)
MIXES = "uniform,forward10,forward50,backward10,backward50"
RUN_NAME = "mobilenet_ce"


def _subprocess(command, log_path, what):
    start = time.time()
    with open(log_path, "w") as out:
        result = subprocess.run(
            [sys.executable, "-m", *command],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    if result.returncode != 0:
        raise SystemExit(
            f"{what} failed (exit {result.returncode}): see {log_path}"
        )
    return time.time() - start


def _train(args, model_dir, log):
    if os.path.exists(os.path.join(model_dir, "metrics.json")):
        return
    if args.reuse:
        raise SystemExit(f"--reuse: no finished run in {model_dir}")
    if not args.pretrained or not os.path.exists(args.pretrained):
        raise SystemExit(f"--pretrained: no file {args.pretrained!r}")
    command = [
        "launch.train", "--dataset=cifar10_lt", f"--model_dir={model_dir}",
        f"--tb_log_dir={model_dir}/log", "--eval_every_epochs=1000",
        "--model=mobilenet", "--model_width=0.25",
        f"--pretrained={os.path.abspath(args.pretrained)}",
        f"--image_size={args.image_size}", "--finetune=full",
        "--holdout_fraction=0.1", "--mode=posthoc", "--loss=crossentropy",
        f"--epochs={args.epochs}",
    ]  # fmt: skip
    log_path = os.path.join(args.output_dir, f"{RUN_NAME}.log")
    seconds = _subprocess(command, log_path, "launch.train")
    log(f"trained {model_dir}: {seconds:.0f} s")


def _served_logits(config, info, logits):
    """The Keras model's served (balanced, tau*) logits."""
    import keras

    from la_keras.adjustment import retarget
    from la_keras.runs import outputs
    from la_keras.runs import reporting

    metrics = outputs.read_json(os.path.join(config.model_dir, "metrics.json"))
    tau = reporting.served_tau(config, metrics) or 0.0
    uniform = np.ones(info.num_classes)
    adjusted = retarget(logits, info.priors, uniform, tau, mode=config.mode)
    return keras.ops.convert_to_numpy(adjusted), tau


def _shift_rows(config, info, logits, mixes):
    from la_keras.runs import adaptation

    rows = {}
    for mix in mixes:
        report = adaptation.shifted_test_report(config, info, logits, mix)
        rows[mix] = {"n": report["num_examples"], **report["top1"]}
    return rows


def _tflite_rows(args, config, info, test, served, log):
    from la_keras.tflite_classifier import TFLiteClassifier
    from la_keras.training import evaluation

    images, labels = test
    reference = served.argmax(-1)
    float_predictions = None
    rows = {}
    for quantize in ("none", "int8"):
        export_dir = os.path.join(args.output_dir, f"tflite_{quantize}")
        path = os.path.join(export_dir, "model.tflite")
        # Exported anew every time: a file of an earlier export would be
        # measured for the code that made it.
        seconds = _subprocess(
            [
                "launch.export",
                f"--model_dir={config.model_dir}",
                "--format=tflite",
                f"--quantize={quantize}",
                f"--export_dir={export_dir}",
            ],  # fmt: skip
            os.path.join(args.output_dir, f"export_{quantize}.log"),
            f"launch.export --quantize={quantize}",
        )
        log(f"exported {path}: {seconds:.0f} s")
        classifier = TFLiteClassifier(path, num_threads=args.threads)
        logits = np.concatenate([
            classifier(images[i : i + 256])[0]
            for i in range(0, len(images), 256)
        ])  # fmt: skip
        times = []
        for i in range(args.latency_runs):
            one = images[i % len(images)][None]
            start = time.perf_counter()
            classifier(one)
            times.append(time.perf_counter() - start)
        report = evaluation.classification_report(
            logits, labels, info.train_counts
        )
        predictions = logits.argmax(-1)
        if float_predictions is None:
            float_predictions = predictions
        rows[quantize] = {
            "mb": os.path.getsize(path) / 2**20,
            "ms": 1000 * float(np.median(times)),
            "agree_keras": float(np.mean(predictions == reference)),
            "agree_float": float(np.mean(predictions == float_predictions)),
            "balanced": report["balanced_accuracy"],
        }
    keras_report = evaluation.classification_report(
        served, labels, info.train_counts
    )
    rows["keras"] = {"balanced": keras_report["balanced_accuracy"]}
    return rows


def _checks(shift, lite):
    """`[(target, measured, passed)]`."""
    out = []
    for mix, row in shift.items():
        gap = 100 * (row["true_prior"] - row["estimated_prior"])
        out.append((f"{mix}: EM within 1.5 points of the oracle",
                    f"oracle - EM {gap:+.2f} points", abs(gap) <= 1.5))  # fmt: skip
    for mix in ("backward50", "forward50"):
        if mix in shift:
            gain = 100 * (
                shift[mix]["estimated_prior"] - shift[mix]["balanced"]
            )
            out.append((f"{mix}: EM beats balanced by >= 3 points",
                        f"EM - balanced {gain:+.2f} points", gain >= 3))  # fmt: skip
    if "uniform" in shift:
        cost = 100 * (
            shift["uniform"]["balanced"] - shift["uniform"]["estimated_prior"]
        )
        out.append(("uniform: adapting costs <= 0.5 point",
                    f"balanced - EM {cost:+.2f} points", cost <= 0.5))  # fmt: skip
    int8 = lite["int8"]
    agree = 100 * int8["agree_float"]
    out.append(("int8 agrees with float on >= 98% of top-1",
                f"{agree:.2f}%", agree >= 98))  # fmt: skip
    gap = 100 * abs(int8["balanced"] - lite["none"]["balanced"])
    out.append(("int8 balanced accuracy within 1 point of float",
                f"{gap:.2f} points", gap <= 1))  # fmt: skip
    share = 100 * int8["mb"] / lite["none"]["mb"]
    out.append(("int8 file <= 30% of float's", f"{share:.1f}%", share <= 30))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--pretrained",
        default=os.path.normpath(PRETRAINED) if os.path.exists(PRETRAINED)
        else None,
    )  # fmt: skip
    parser.add_argument("--output_dir", required=True)
    parser.add_argument(
        "--model_dir", help=f"The run (default: <output_dir>/{RUN_NAME})."
    )
    parser.add_argument(
        "--reuse", action="store_true", help="Never train: read --model_dir."
    )
    parser.add_argument("--image_size", type=int, default=96)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--mixes", default=MIXES)
    parser.add_argument("--latency_runs", type=int, default=200)
    parser.add_argument(
        "--threads", type=int, default=1, help="TFLite interpreter threads."
    )
    args = parser.parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    model_dir = args.model_dir or os.path.join(args.output_dir, RUN_NAME)

    def log(line):
        print(line, flush=True)

    log(f"load average before: {os.getloadavg()}")
    _train(args, model_dir, log)

    from la_keras.runs import adaptation
    from la_keras.runs import run_state
    from la_keras.runs.resolved import ResolvedConfig

    config = ResolvedConfig.read(model_dir)
    state = run_state.newest_state(config)
    info = state.info
    images, labels, _ = config.data.arrays("test")
    logits = {
        "test": (
            adaptation.predict_images(
                state.model, images, info, config.data.test_batch_size
            ),
            np.asarray(labels, np.int64),
        ),
        "holdout": adaptation.split_logits(config, state.model, "holdout"),
    }
    shift = _shift_rows(config, info, logits, args.mixes.split(","))
    served, tau = _served_logits(config, info, logits["test"][0])
    lite = _tflite_rows(
        args, config, info, (images, logits["test"][1]), served, log
    )
    log(f"load average after: {os.getloadavg()}")

    print(f"\n{model_dir}: served tau* = {tau:g}; top-1 on the resampled "
          "test split (EM: calibrated by BCTS on the holdout)\n")  # fmt: skip
    print("| test mix | images | balanced rule | EM estimate | oracle |")
    print("|---|---|---|---|---|")
    for mix, row in shift.items():
        print(f"| {mix} | {row['n']} | {row['balanced']:.4f} | "
              f"{row['estimated_prior']:.4f} | {row['true_prior']:.4f} |")  # fmt: skip
    print(f"\nTFLite, {len(images)} test images; latency: batch 1, median "
          f"of {args.latency_runs}, {args.threads} thread(s); Keras served "
          f"rule's balanced accuracy {lite['keras']['balanced']:.4f}\n")  # fmt: skip
    print("| model | MB | ms / image | = Keras top-1 | = float top-1 | "
          "balanced acc. |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for name, label in (("none", "float32"), ("int8", "int8")):
        row = lite[name]
        print(f"| {label} | {row['mb']:.3f} | {row['ms']:.2f} | "
              f"{row['agree_keras']:.4f} | {row['agree_float']:.4f} | "
              f"{row['balanced']:.4f} |")  # fmt: skip
    print("\n| target | measured | |\n|---|---|---|")
    for target, measured, passed in _checks(shift, lite):
        print(f"| {target} | {measured} | {'PASS' if passed else 'MISS'} |")


if __name__ == "__main__":
    main()
