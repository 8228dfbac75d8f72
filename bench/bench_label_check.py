"""Cost of the label check: a ResNet-32 train step, LA loss vs plain CE.

    python bench/bench_label_check.py [--steps 1 --repeats 40]

Times one training step of `la_keras.models.official_resnet32` (batch 128,
CIFAR shapes, random data, graph-mode `tf.function`, the official L2 weight
decay on the kernels, `SGD(0.1, momentum=0.9, nesterov=True)` as in
`bench/bench_train.py`) with

- `LogitAdjustedLoss` on the CIFAR-10-LT priors, label checks on
  (`la_keras.labels.class_ids`: the `tf.debugging.Assert` and the NaN mask);
- Keras's `SparseCategoricalCrossentropy(from_logits=True)`, no checks,

in interleaved repetitions (the order alternates every repetition), and
prints images/s of both and their ratio side by side: from the best and
the median repetition, and the median of the per-repetition ratios, the
figure least moved by other processes on a shared machine. It also times the loss alone (forward and gradient
on `[128, 10]` logits), where the check is a visible share of the work.

The step is built here rather than taken from `bench_train.py`, whose
model and optimizer are built inside its `Trainer` helper: the same
model, optimizer and regularization, without the distribution strategy.
The machine may be shared: compare the ratios, and rerun when in doubt.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from la_keras import priors as priors_lib  # noqa: E402
from la_keras.losses import LogitAdjustedLoss  # noqa: E402
from la_keras.models import official_resnet32  # noqa: E402

BATCH = 128
CLASSES = 10
COUNTS = priors_lib.exp_profile_counts(5000, CLASSES, 100)  # CIFAR-10-LT


def make_losses():
    return {
        "LogitAdjustedLoss (checks on)": LogitAdjustedLoss(COUNTS),
        "SparseCategoricalCrossentropy": keras.losses.SparseCategoricalCrossentropy(
            from_logits=True
        ),
    }


def train_step(loss_fn):
    """A compiled SGD step of a fresh official ResNet-32 with `loss_fn`."""
    keras.utils.set_random_seed(0)
    model = official_resnet32(CLASSES)
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)

    @tf.function
    def step(images, labels):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = loss_fn(labels, logits) + tf.add_n(model.losses)
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(
            zip(grads, model.trainable_variables, strict=True)
        )
        return loss

    return step


def loss_step(loss_fn):
    """The loss alone: value and gradient with respect to the logits."""

    @tf.function
    def step(logits, labels):
        with tf.GradientTape() as tape:
            tape.watch(logits)
            loss = loss_fn(labels, logits)
        return loss, tape.gradient(loss, logits)

    return step


def interleaved(steps_by_name, args, count, repeats):
    """Seconds per call of each step, one list per name, interleaved."""
    names = list(steps_by_name)
    for name in names:
        steps_by_name[name](*args)  # trace and warm up
        steps_by_name[name](*args)
    times = {name: [] for name in names}
    for repeat in range(repeats):
        order = names if repeat % 2 == 0 else names[::-1]
        for name in order:
            step = steps_by_name[name]
            start = time.perf_counter()
            for _ in range(count):
                out = step(*args)
            tf.nest.map_structure(lambda t: t.numpy(), out)
            times[name].append((time.perf_counter() - start) / count)
    return times


def report(title, times, unit, scale):
    """Prints best / median throughput and the LA / CE ratios.

    The paired ratio compares the two losses within each repetition (they
    ran back to back), so load that drifts between repetitions cancels.
    """
    (_, la_t), (_, ce_t) = times.items()
    print(f"\n{title}")
    print(f"   {'':32s} {'best':>10s} {'median':>10s}")
    for name, t in times.items():
        best, median = scale / np.min(t), scale / np.median(t)
        print(f"   {name:32s} {best:10.1f} {median:10.1f}  {unit}")
    ratios = {
        "best": np.min(ce_t) / np.min(la_t),
        "median": np.median(ce_t) / np.median(la_t),
        "paired": np.median(np.array(ce_t) / np.array(la_t)),
    }
    print(
        f"   {'ratio LA / CE (throughput)':32s} {ratios['best']:10.4f} "
        f"{ratios['median']:10.4f}  (median of paired ratios "
        f"{ratios['paired']:.4f})"
    )
    return ratios


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1, help="per repetition")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--loss_calls", type=int, default=200)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = tf.constant(rng.normal(size=(BATCH, 32, 32, 3)), tf.float32)
    labels = tf.constant(rng.integers(0, CLASSES, BATCH), tf.int64)
    print(
        f"TensorFlow {tf.__version__}, Keras {keras.__version__}, batch "
        f"{BATCH}, {len(os.sched_getaffinity(0))} CPUs visible, "
        f"{args.repeats} interleaved repetitions"
    )
    losses = make_losses()
    train = interleaved(
        {name: train_step(fn) for name, fn in losses.items()},
        (images, labels),
        args.steps,
        args.repeats,
    )
    ratios = report(
        f"Train step, official ResNet-32 ({args.steps} step(s) a repetition)",
        train,
        "images/s",
        BATCH,
    )
    print(
        f"   {'LA step time vs CE':32s} {1 / ratios['best'] - 1:+10.2%} "
        f"{1 / ratios['median'] - 1:+10.2%}  (paired "
        f"{1 / ratios['paired'] - 1:+.2%}; target within 2%)"
    )
    logits = tf.constant(rng.normal(size=(BATCH, CLASSES)), tf.float32)
    alone = interleaved(
        {name: loss_step(fn) for name, fn in losses.items()},
        (logits, labels),
        args.loss_calls,
        min(args.repeats, 10),
    )
    report("The loss alone, value + gradient", alone, "calls/s", 1.0)
    for name, t in alone.items():
        print(f"   {name:32s} {np.min(t) * 1e6:12.1f} us/call (best)")


if __name__ == "__main__":
    main()
