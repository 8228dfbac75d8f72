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
`--warmup` steps in that epoch (see `_Steps`).

The machine may be shared: compare the ratios, and rerun when in doubt.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import os
import subprocess
import sys
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

FLAGFILE = os.path.join(ROOT, "launch", "configs", "cifar10_lt.cfg")
BATCH = 128
RESULT_PREFIX = "RESULT "


# -- the workers (one backend per process) -----------------------------------


def _run_config(prepared_path, batch):
    """The `ResolvedConfig` launch.train resolves for the benchmark's flags."""
    from absl import flags

    from la_keras.runs.resolved import ResolvedConfig
    from launch import common_flags

    common_flags.define_flags()
    flags.FLAGS(
        [
            "launch.train",
            f"--flagfile={FLAGFILE}",
            f"--dataset=prepared:{prepared_path}",
            "--mode=loss",
            f"--train_batch_size={batch}",
        ]
    )
    return ResolvedConfig.from_flags(flags.FLAGS)


class _Steps:
    """Timed `train_steps` calls, each one chunk inside one epoch.

    As `TrainingLoop` calls it: `trainer.train_steps(iterator, n)` on the
    iterator of an epoch, `epoch_data(epoch, skip)`, the loss read back to
    the host (which waits for the steps). Every epoch used starts with an
    untimed warm-up call of `warmup` steps (compilation, and the TensorFlow
    pipeline's shuffle buffer filling); each timed call is `steps` steps of
    the current epoch, or of the next one when they do not fit. With
    `compile_steps`, an untimed call of that many steps follows the first
    warm-up: for a step loop compiled once per call length (`JaxTrainer`'s
    `loop="scan"`).
    """

    def __init__(
        self, trainer, epoch_data, steps_per_epoch, args, compile_steps=0
    ):
        needed = args.warmup + compile_steps + args.steps
        if needed > steps_per_epoch:
            raise ValueError(
                f"--warmup={args.warmup} + --steps={args.steps} (the steps "
                f"twice for loop=scan) = {needed} steps do not fit in one "
                f"epoch of {steps_per_epoch} steps."
            )
        self.trainer = trainer
        self.epoch_data = epoch_data
        self.steps_per_epoch = steps_per_epoch
        self.args = args
        self.epoch = -1
        self._next_epoch()
        if compile_steps:
            self._call(compile_steps)

    def _call(self, num_steps):
        loss = self.trainer.train_steps(self._iterator, num_steps)
        self.in_epoch += num_steps
        if not math.isfinite(loss):
            raise RuntimeError(f"The training loss is {loss}.")

    def _next_epoch(self):
        self.epoch += 1
        self.in_epoch = 0
        self._iterator = self.epoch_data(self.epoch, 0)
        self._call(self.args.warmup)

    def timed(self) -> float:
        """Seconds of one `train_steps` call of `steps` steps."""
        if self.in_epoch + self.args.steps > self.steps_per_epoch:
            self._next_epoch()
        start = time.perf_counter()
        self._call(self.args.steps)
        return time.perf_counter() - start


def _time(trainer, epoch_data, steps_per_epoch, args, compile_steps=0):
    """images/s of `args.steps` steps, the fastest of `args.repeats`."""
    runner = _Steps(trainer, epoch_data, steps_per_epoch, args, compile_steps)
    # The least disturbed by other processes: the fastest repeat.
    seconds = [runner.timed() for _ in range(args.repeats)]
    return {
        "images_per_s": args.steps * args.batch / min(seconds),
        "seconds": seconds,
        "epochs_used": runner.epoch + 1,
    }


def worker_tensorflow(args):
    """launch.train's TensorFlow path (`la_keras.runs.train_tf._run`), timed."""
    import keras
    import tensorflow as tf

    from la_keras.runs import common
    from la_keras.runs.train_tf import build_datasets
    from la_keras.runs.train_tf import train_data
    from la_keras.training import Trainer

    config = _run_config(args.prepared, args.batch)
    keras.utils.set_random_seed(config.data.seed)
    strategy = common.create_strategy(config)
    builders = build_datasets(config, strategy.num_replicas_in_sync)
    builder = builders["train"]
    info = builder.info
    with strategy.scope():
        model = config.build_model(info.num_classes, info.image_shape)
        loss = config.build_loss(info)
        optimizer = config.schedule.optimizer(builder.steps_per_epoch)
    trainer = Trainer(
        strategy, model, loss, optimizer, jit_compile=config.jit_compile
    )
    epoch_data = train_data(strategy, builder)
    result = _time(
        trainer,
        epoch_data,
        builder.steps_per_epoch,
        args,
    )
    try:
        worker_device = strategy.extended.worker_devices[0]
    except RuntimeError:  # the default strategy (one device, e.g. a CPU)
        worker_device = tf.config.list_logical_devices()[0].name
    device = tf.DeviceSpec.from_string(worker_device)
    result.update(
        device=f"{device.device_type}:{device.device_index} "
        f"({type(strategy).__name__})",
        variant="Trainer + DatasetBuilder"
        + (", XLA" if config.jit_compile else ", no XLA"),
        train_examples=builder.num_examples,
    )
    return [result]


def worker_jax(args):
    """launch.train's JAX path (`la_keras.runs.train_jax._run`), timed."""
    import contextlib

    import keras

    from la_keras.runs import train_jax

    config = _run_config(args.prepared, args.batch)
    dist = train_jax.distribution(config)  # None on one device
    keras.utils.set_random_seed(config.data.seed)
    with dist.scope() if dist else contextlib.nullcontext():
        data = train_jax.device_dataset(config, dist)
        # launch.train's --jax_loop=auto, or each of --jax_loops.
        return [
            _time_jax(config.replace(jax_loop=jax_loop), data, args)
            for jax_loop in (args.jax_loops or "auto").split(",")
        ]


def _time_jax(config, data, args):
    """The timing of one `JaxTrainer` as la_keras.runs.train_jax builds it."""
    import jax
    import keras

    from la_keras.runs import train_jax

    keras.utils.set_random_seed(config.data.seed)
    info = config.data.info()
    *_, trainer = train_jax.build_trainer(config, info, data.steps_per_epoch)
    loop = trainer.loop
    # The scan is compiled once per call length: compile the timed one.
    compile_steps = args.steps if loop == "scan" else 0
    result = _time(
        trainer, data.epoch, data.steps_per_epoch, args, compile_steps
    )
    devices = jax.devices()
    result.update(
        device=f"{devices[0].platform.upper()}:{devices[0].id} (jax)"
        + (f" x{len(devices)}" if len(devices) > 1 else ""),
        variant="JaxTrainer + DeviceDataset"
        + (", jit" if config.jit_compile else ", eager")
        + f", loop={loop}"
        + (" (auto)" if config.jax_loop == "auto" else ""),
        train_examples=len(data.labels),
    )
    return result


def worker_overhead(args):
    """Per-epoch overhead rows of this backend (`bench/loop_overhead.py`)."""
    import keras
    import loop_overhead

    config = _run_config(args.prepared, args.batch)
    if keras.backend.backend() == "tensorflow":
        return loop_overhead.measure_tensorflow(config, args)
    loops = (args.jax_loops or "python,scan").split(",")
    return loop_overhead.measure_jax(config, args, loops)


def worker_main(args):
    import keras

    parts = args.parts.split(",")
    results = {}
    if "throughput" in parts:
        run = worker_tensorflow if args._worker == "tensorflow" else worker_jax
        results["throughput"] = run(args)
    if "overhead" in parts:
        results["overhead"] = worker_overhead(args)
    if "fit" in parts:
        import keras_fit

        config = _run_config(args.prepared, args.batch)
        results["reference"] = keras_fit.reference_rows(config, args)
    backend = keras.backend.backend()
    for rows in results.values():
        for result in rows:
            result["backend"] = backend
    print(RESULT_PREFIX + json.dumps(results), flush=True)


# -- the parent ---------------------------------------------------------------


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
        worker_main(args)
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
        _print_throughput(args, prepared_path, parts)
    if "overhead" in parts:
        import loop_overhead

        loop_overhead.print_rows(parts["overhead"], args.batch, args.repeats)
    print(
        "\n   The machine may be shared: compare the ratios, and rerun when "
        "in doubt."
    )


def _print_throughput(args, prepared_path, parts):
    ours = parts.get("throughput", [])
    references = parts.get("reference", [])
    print(
        f"\n{os.path.basename(prepared_path)}: official ResNet-32, "
        f"logit-adjusted loss, batch {args.batch}, {args.steps} steps timed "
        f"after {args.warmup} (best of {args.repeats})"
    )

    def reference(kind, backend=None):
        return next(
            (r["images_per_s"] for r, _ in references
             if r["kind"] == kind and backend in (None, r["backend"])),
            None,
        )  # fmt: skip

    def ratio(value, base):
        return f"{value / base:5.2f}x" if base else "     -"

    tf_rate = next(
        (r["images_per_s"] for r, _ in ours if r["backend"] == "tensorflow"),
        None,
    )
    official = reference("official")
    print(
        f"\n   {'backend':11s} {'path':52s} {'device':20s} {'images/s':>9s} "
        f"{'vs TF':>6s} {'vs fit':>6s} {'vs off.':>7s} {'process':>8s}"
    )
    for result, wall in ours:
        rate = result["images_per_s"]
        fit = reference("fit", result["backend"])
        print(
            f"   {result['backend']:11s} {result['variant']:52s} "
            f"{result['device'][:20]:20s} {rate:9.1f} "
            f"{ratio(rate, tf_rate):>6s} {ratio(rate, fit):>6s} "
            f"{ratio(rate, official):>7s} {wall:7.0f}s"
        )
    for result, _ in references:
        tried = result.get("tried")
        print(
            f"   {result['backend']:11s} {result['variant']:52s} "
            f"{'':20s} {result['images_per_s']:9.1f}"
            + (
                "  (tried: "
                + ", ".join(f"{k}: {v:.1f}" for k, v in tried.items())
                + ")"
                if tried
                else ""
            )
        )
    print(
        "\n   images/s: the fastest repeat (input pipeline included); vs fit: "
        "ours over Keras's\n   model.fit on the same backend (best "
        "steps_per_execution); vs off.: over the\n   official eager loop "
        "(TensorFlow); process: the worker's wall time."
    )


if __name__ == "__main__":
    main()
