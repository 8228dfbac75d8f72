"""Training throughput, loss overhead and FLOP/s of launch.train's loop.

    TFDS_DATA_DIR=../shared/tfds python bench/bench_train.py

Prints, side by side in one run:

1. Throughput (images/s, input pipeline included) on CIFAR-10-LT with the
   official ResNet-32, batch 128: launch.train's loop (`la_keras.training.
   Trainer`: `strategy.run` in a `tf.function`, `DatasetBuilder` pipeline)
   as launch.train runs it on CPU by default (no XLA), with XLA
   (`--jit_compile`) and under the `mixed_bfloat16` policy, vs the official
   release's loop style (an eager `GradientTape` loop over
   `TFRecordDataset.shuffle(10000).batch(128).map(parse + tf.map_fn)`,
   `bench/official_loop.py`), on the official-format TFRecord written from
   the same images, and vs Keras's own `model.fit` on launch.train's
   pipeline with `steps_per_execution` tuned (`bench/keras_fit.py`:
   `--fit_steps_per_execution` values, the best reported); la_keras's
   speed-up is printed against both.
2. Loss overhead: the same compiled train step with `LogitAdjustedLoss`
   (its label range check included) vs Keras's plain sparse cross-entropy,
   on a fixed in-memory batch, interleaved.
3. FLOP/s: forward FLOPs of the model (TF profiler `float_ops` on the
   concrete function, cross-checked with the analytic conv/dense count) x 3
   for forward + backward, over the measured step time, as a fraction of
   the machine's fp32 peak (cores x GHz x 32 FLOP/cycle for AVX2 + 2 FMA
   units: 8 lanes x 2 FLOP x 2 units).

The machine may be shared: compare the ratios, and rerun when in doubt.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from la_keras import distribute  # noqa: E402
from la_keras import losses as losses_lib  # noqa: E402
from la_keras.datasets import DatasetBuilder  # noqa: E402
from la_keras.datasets import registry  # noqa: E402
from la_keras.models import official_resnet32  # noqa: E402
from la_keras.training import Trainer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import keras_fit  # noqa: E402
import official_loop  # noqa: E402

BATCH = 128


def _trainer(loss, strategy, jit_compile=False, policy="float32"):
    keras.utils.set_random_seed(0)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        with strategy.scope():
            model = official_resnet32(10)
            optimizer = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
    finally:
        keras.config.set_dtype_policy(previous)
    trainer = Trainer(strategy, model, loss, optimizer, jit_compile=jit_compile)
    return trainer, model


def bench_la_keras(data_dir, steps, warmup, jit_compile, policy="float32"):
    """images/s of launch.train's loop, pipeline included."""
    builder = DatasetBuilder("cifar10_lt", "train", BATCH, True, data_dir)
    # launch.train's strategy on a CPU (--strategy=auto): the default one.
    strategy = distribute.get_strategy("auto")
    loss = losses_lib.build("logit_adjusted", builder.info.train_counts)
    trainer, _ = _trainer(loss, strategy, jit_compile, policy)
    iterator = iter(
        strategy.distribute_datasets_from_function(
            lambda ctx: builder.dataset_fn(ctx).repeat()
        )
    )
    trainer.train_steps(iterator, warmup)
    start = time.perf_counter()
    trainer.train_steps(iterator, steps)
    return steps * BATCH / (time.perf_counter() - start)


def bench_official(data_dir, steps, warmup):
    """images/s of the official eager loop over the official pipeline."""
    dataset, info = registry.load("cifar10_lt", "train", data_dir)
    images, labels = zip(
        *[(x, y) for x, y in dataset.as_numpy_iterator()], strict=True
    )
    return official_loop.images_per_second(
        np.stack(images), np.array(labels), info.priors, steps, warmup, BATCH
    )


def bench_fit(data_dir, steps, warmup, values):
    """Keras's model.fit on launch.train's pipeline (`bench/keras_fit.py`)."""
    builder = DatasetBuilder("cifar10_lt", "train", BATCH, True, data_dir)

    def build():
        keras.utils.set_random_seed(0)
        model = official_resnet32(10)
        loss = losses_lib.build("logit_adjusted", builder.info.train_counts)
        optimizer = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
        return model, loss, optimizer

    return keras_fit.fit_images_per_second(
        build, builder.dataset_fn().repeat(), BATCH, steps, warmup, values
    )


def bench_loss_overhead(steps, repeats, counts):
    """Seconds per compiled step for LA loss and plain CE, interleaved."""
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, 32, 32, 3)).astype(np.float32)
    y = rng.integers(0, 10, BATCH)
    data = tf.data.Dataset.from_tensors((x, y)).repeat()
    losses = {
        "logit_adjusted": losses_lib.build("logit_adjusted", counts),
        "crossentropy": losses_lib.build("crossentropy", counts),
    }
    trainers = {
        name: _trainer(loss, strategy)[0] for name, loss in losses.items()
    }
    iterators = {
        name: iter(strategy.experimental_distribute_dataset(data))
        for name in losses
    }
    times = {name: [] for name in losses}
    for name, trainer in trainers.items():
        trainer.train_steps(iterators[name], 2)
    for _ in range(repeats):
        for name, trainer in trainers.items():
            start = time.perf_counter()
            trainer.train_steps(iterators[name], steps)
            times[name].append((time.perf_counter() - start) / steps)
    # The minimum over repeats is the least disturbed by other processes.
    return {name: float(np.min(t)) for name, t in times.items()}


def forward_flops(model, batch):
    """(profiler float_ops, analytic conv + dense FLOPs) of one forward pass."""
    spec = tf.TensorSpec([batch, 32, 32, 3], tf.float32)
    concrete = tf.function(
        lambda x: model(x, training=False)
    ).get_concrete_function(spec)
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    profiled = tf.compat.v1.profiler.profile(
        graph=concrete.graph, options=options
    )
    analytic = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2D):
            _, h, w, c_out = layer.output.shape
            kh, kw = layer.kernel_size
            analytic += 2 * h * w * kh * kw * layer.input.shape[-1] * c_out
        elif isinstance(layer, keras.layers.Dense):
            analytic += 2 * layer.input.shape[-1] * layer.units
    return profiled.total_float_ops, analytic * batch


def cpu_peak():
    """(peak fp32 FLOP/s, description) from /proc/cpuinfo and the CPU count."""
    with open("/proc/cpuinfo") as f:
        info = f.read()
    flags = set(re.search(r"^flags\s*:(.*)$", info, re.M).group(1).split())
    mhz = [
        float(m) for m in re.findall(r"^cpu MHz\s*:\s*([0-9.]+)", info, re.M)
    ]
    ghz = (max(mhz) if mhz else 2000.0) / 1000.0
    cores = len(os.sched_getaffinity(0))
    if "avx512f" in flags:
        per_cycle, isa = 64, "AVX-512 + 2 FMA"
    elif "avx2" in flags and "fma" in flags:
        per_cycle, isa = 32, "AVX2 + 2 FMA"
    else:
        per_cycle, isa = 8, "SSE"
    peak = cores * ghz * 1e9 * per_cycle
    return (
        peak,
        f"{cores} cores x {ghz:.2f} GHz x {per_cycle} FLOP/cycle ({isa})",
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_dir", default=os.environ.get("TFDS_DATA_DIR"))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--fit_steps_per_execution",
        default="1,4,16",
        help="model.fit's steps_per_execution values to try; the best counts.",
    )
    parser.add_argument("--overhead_steps", type=int, default=5)
    parser.add_argument("--overhead_repeats", type=int, default=5)
    parser.add_argument(
        "--parts", default="1,2,3", help="Which measurements to run, e.g. 2,3."
    )
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    tf.config.threading.set_inter_op_parallelism_threads(0)

    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, batch {BATCH}"
    )
    if "1" in parts:
        _throughput(args)
    if parts & {"2", "3"}:
        _overhead_and_flops(args, parts)


def _throughput(args):
    steps, warmup = args.steps, args.warmup
    ours = bench_la_keras(args.data_dir, steps, warmup, False)
    ours_xla = bench_la_keras(args.data_dir, steps, warmup, True)
    ours_bf16 = bench_la_keras(
        args.data_dir, steps, warmup, False, "mixed_bfloat16"
    )
    theirs = bench_official(args.data_dir, max(steps // 2, 3), warmup)
    values = [int(v) for v in args.fit_steps_per_execution.split(",")]
    fit, best, fit_rates = bench_fit(args.data_dir, steps, warmup, values)
    print("\n1. Throughput, CIFAR-10-LT, official ResNet-32, pipeline included")
    tried = ", ".join(f"{v}: {r:.1f}" for v, r in fit_rates.items())
    rows = (
        ("launch.train loop (CPU default: no XLA)", ours),
        ("launch.train loop (--jit_compile, XLA)", ours_xla),
        ("launch.train loop (mixed_bfloat16)", ours_bf16),
        ("official eager GradientTape loop", theirs),
        (f"Keras model.fit (steps_per_execution={best})", fit),
    )
    for name, value in rows:
        print(f"   {name:42s} {value:8.1f} images/s")
    print(f"   (model.fit, images/s by steps_per_execution: {tried})")
    print(f"   {'':42s} {'vs official':>11s} {'vs fit':>8s}")
    for name, value in (
        ("speed-up, CPU default", ours),
        ("speed-up, --jit_compile", ours_xla),
        ("speed-up, mixed_bfloat16", ours_bf16),
    ):
        print(f"   {name:42s} {value / theirs:10.2f}x {value / fit:7.2f}x")
    print("   (target vs the official loop: >= 2.5x)")


def _overhead_and_flops(args, parts):
    _, info = registry.load("cifar10_lt", "train", args.data_dir)
    step_s = bench_loss_overhead(
        args.overhead_steps, args.overhead_repeats, info.train_counts
    )
    overhead = step_s["logit_adjusted"] / step_s["crossentropy"] - 1.0
    print(
        "\n2. Loss overhead, compiled train step, fixed batch (min of repeats)"
    )
    for name, seconds in step_s.items():
        print(f"   {name:42s} {seconds * 1e3:8.1f} ms/step")
    print(
        f"   {'logit-adjusted vs cross-entropy':42s} {overhead * 100:+8.2f} %  (target within 2%)"
    )
    if "3" not in parts:
        return
    profiled, analytic = forward_flops(official_resnet32(10), BATCH)
    train_flops = 3 * profiled
    achieved = train_flops / step_s["crossentropy"]
    peak, how = cpu_peak()
    print("\n3. FLOP/s of the train step")
    print(
        f"   forward FLOPs / batch (tf profiler)        {profiled / 1e9:8.2f} GFLOP"
    )
    print(
        f"   forward FLOPs / batch (analytic conv+dense){analytic / 1e9:8.2f} GFLOP"
    )
    print(
        f"   train step (fwd + bwd = 3 x fwd)           {train_flops / 1e9:8.2f} GFLOP"
    )
    print(
        f"   achieved                                   {achieved / 1e9:8.1f} GFLOP/s"
    )
    print(f"   peak: {how} = {peak / 1e9:.1f} GFLOP/s")
    print(
        f"   fraction of peak                           {achieved / peak * 100:8.1f} %"
    )


if __name__ == "__main__":
    main()
