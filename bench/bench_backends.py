"""Training throughput and per-epoch overhead of launch.train, TF vs JAX.

    TFDS_DATA_DIR=../shared/tfds python bench/bench_backends.py \
        --jax_loops=python,scan --parts=throughput,fit,overhead

Prints, per `--parts`:

- throughput: the images/s of launch.train's training paths (below);
- fit: beside them, on each backend, Keras's own `model.fit` on the same
  model, data (launch.train's `tf.data` pipeline with the official crop
  and flip), batch, `jit_compile` left to Keras and `steps_per_execution`
  tuned (`--fit_steps_per_execution`, the best counts; `bench/
  keras_fit.py`), and on TensorFlow the official release's eager loop
  (`bench/official_loop.py`): la_keras's ratio to each is printed;
- overhead: the wall time per epoch that `TrainingLoop` spends outside the
  step, in ms and as a share of the 534 ms an official epoch takes at
  23,000 images/s, for a tiny dense net on the official 96-step epoch, on
  TensorFlow and on JAX with each loop shape (default python,scan):
  `TrainingLoop.run` over `--overhead_epochs` epochs, minus that many
  times one epoch's `train_steps` timed alone; `bench/loop_overhead.py`
  says exactly how.

`--quick` times fewer steps and epochs (a minute or two a part on a 2-core
CPU).

Throughput: the images/s (input pipeline included) of
the two training paths of `launch.train` on CIFAR-10-LT (official profile,
ratio 100, 12,406 training images), the official ResNet-32 and the
logit-adjusted loss (`--mode=loss`), batch 128, with the optimizer and
schedule of `launch/configs/cifar10_lt.cfg`:

- TensorFlow (`KERAS_BACKEND=tensorflow`): `la_keras.training.Trainer`
  (`strategy.run` in a `tf.function`) over the `DatasetBuilder` pipeline,
  as launch.train runs it on CPU by default (no XLA);
- JAX (`KERAS_BACKEND=jax`): `la_keras.training.jax_trainer.JaxTrainer` (a
  jitted step) over `DeviceDataset` (the uint8 training set on the device,
  crop and flip in a jitted batch function), as la_keras/runs/train_jax.py runs it
  with `--jax_loop=auto` (on CPU a Python loop over the jitted step); with
  `--jax_loops=python,scan`, once per loop (scan: one `lax.scan` per
  `train_steps` call, the batches made inside it; on a 2-core CPU it ran
  about 10x slower than the Python loop, some 20 s a step: that run takes
  about 25 minutes).

Both read the same `launch.prepare` file (`--dataset=prepared:PATH`):
`--prepared=PATH` names one, else one is written to a temporary folder
first (`python -m launch.prepare --dataset=cifar10_lt`, about a minute;
needs TFDS_DATA_DIR or --data_dir). `--dataset=test` uses the tiny
synthetic set instead, with batch 4 and 3 steps: a smoke check of the
script, not a measurement.

Keras's backend is fixed per process, so each backend runs in a subprocess
of this script (`--_worker=tensorflow|jax`) that prints one JSON line; each
times one `train_steps` call of `--steps` steps (`--repeats` times, the
fastest counts), inside one epoch after an untimed warm-up call of
`--warmup` steps in that epoch (`bench/backend_timing.py`).

The machine may be shared: compare the ratios, and rerun when in doubt.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import backend_workers  # noqa: E402
import backends_report  # noqa: E402

BATCH = 128
RESULT_PREFIX = backend_workers.RESULT_PREFIX


# -- the parent (the workers: bench/backend_workers.py) ------------------------


def _version(package):
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _prepare(dataset, data_dir, directory):
    """Writes `dataset` with launch.prepare into `directory`; its path."""
    path = os.path.join(directory, f"{dataset}.prepared")
    command = [
        sys.executable,
        "-m",
        "launch.prepare",
        f"--dataset={dataset}",
        f"--output={path}",
    ]
    if data_dir:
        command.append(f"--data_dir={data_dir}")
    elif dataset != "test":
        sys.exit(
            "bench_backends: pass --prepared=PATH, or set TFDS_DATA_DIR (or "
            "--data_dir) to prepare CIFAR-10-LT."
        )
    print(f"Preparing {dataset} (python -m launch.prepare) ...", flush=True)
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    print(f"  {time.perf_counter() - start:.0f} s", flush=True)
    return path


def _run_worker(backend, args, prepared_path):
    command = [
        sys.executable,
        os.path.abspath(__file__),
        f"--_worker={backend}",
        f"--prepared={prepared_path}",
        f"--steps={args.steps}",
        f"--warmup={args.warmup}",
        f"--batch={args.batch}",
        f"--repeats={args.repeats}",
        f"--jax_loops={args.jax_loops}",
        f"--parts={args.parts}",
        f"--overhead_epochs={args.overhead_epochs}",
        f"--fit_steps_per_execution={args.fit_steps_per_execution}",
    ]
    env = dict(os.environ, KERAS_BACKEND=backend)
    start = time.perf_counter()
    process = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True
    )
    wall = time.perf_counter() - start
    lines = [
        line[len(RESULT_PREFIX) :]
        for line in process.stdout.splitlines()
        if line.startswith(RESULT_PREFIX)
    ]
    if process.returncode != 0 or not lines:
        sys.stderr.write(process.stdout[-4000:] + process.stderr[-4000:])
        sys.exit(
            f"bench_backends: the {backend} worker failed "
            f"(exit status {process.returncode})."
        )
    return json.loads(lines[-1]), wall


def _load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--prepared", default=None, help="A launch.prepare file to train on."
    )
    parser.add_argument(
        "--dataset",
        default="cifar10_lt",
        choices=("cifar10_lt", "test"),
        help="What to prepare without --prepared; test: a smoke check.",
    )
    parser.add_argument("--data_dir", default=os.environ.get("TFDS_DATA_DIR"))
    parser.add_argument(
        "--steps", type=int, default=None, help="Default 30 (test: 3)."
    )
    parser.add_argument(
        "--warmup", type=int, default=None, help="Default 5 (test: 1)."
    )
    parser.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="Times each backend times --steps steps; the fastest counts.",
    )
    parser.add_argument(
        "--batch", type=int, default=None, help="Default 128 (test: 4)."
    )
    parser.add_argument(
        "--backends", default="tensorflow,jax", help="Which to run, in order."
    )
    parser.add_argument(
        "--jax_loops",
        default="",
        help="launch.train --jax_loop values to time, each on its own, e.g. "
        "python,scan (default: auto only).",
    )
    parser.add_argument(
        "--parts",
        default="throughput,overhead",
        help="What to measure: throughput (ResNet-32 images/s), overhead "
        "(the loop's per-epoch overhead, a tiny dense net), fit (Keras's "
        "model.fit, ResNet-32), comma-separated.",
    )
    parser.add_argument(
        "--overhead_epochs",
        type=int,
        default=None,
        help="Epochs of each timed TrainingLoop.run (default 20; --quick 5).",
    )
    parser.add_argument(
        "--fit_steps_per_execution",
        default="1,4,16",
        help="model.fit's steps_per_execution values to try; the best counts.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="Fewer steps and epochs (10 steps, 2 warm-up, 5 epochs; "
        "model.fit with steps_per_execution 1,8): a minute or two a part.",
    )
    parser.add_argument("--_worker", choices=("tensorflow", "jax"))
    args = parser.parse_args()
    smoke = args.dataset == "test" and not args.prepared
    for name, default, smoke_default, quick_default in (
        ("batch", BATCH, 4, BATCH),
        ("steps", 30, 3, 10),
        ("warmup", 5, 1, 2),
        ("overhead_epochs", 20, 3, 5),
    ):
        if getattr(args, name) is None:
            quick = quick_default if args.quick else default
            setattr(args, name, smoke_default if smoke else quick)
    if args.quick and not args._worker:
        args.fit_steps_per_execution = "1,8"
    if args._worker:
        backend_workers.worker_main(args)
        return

    load_before = _load()
    with tempfile.TemporaryDirectory() as directory:
        prepared_path = args.prepared or _prepare(
            args.dataset, args.data_dir, directory
        )
        prepared_path = os.path.abspath(prepared_path)
        parts = {}
        for backend in args.backends.split(","):
            results, wall = _run_worker(backend, args, prepared_path)
            for part, rows in results.items():
                parts.setdefault(part, []).extend((r, wall) for r in rows)
        load_after = _load()

    print(
        f"\nKeras {_version('keras')}, TensorFlow {_version('tensorflow')}, "
        f"JAX {_version('jax')} (jaxlib {_version('jaxlib')}), "
        f"{len(os.sched_getaffinity(0))} CPUs"
    )
    print(
        f"load average (1, 5, 15 min): before {load_before}, after {load_after}"
    )
    if "throughput" in parts or "reference" in parts:
        backends_report.print_throughput(args, prepared_path, parts)
    if "overhead" in parts:
        import loop_overhead

        loop_overhead.print_rows(parts["overhead"], args.batch, args.repeats)
    print(
        "\n   The machine may be shared: compare the ratios, and rerun when "
        "in doubt."
    )


if __name__ == "__main__":
    main()
