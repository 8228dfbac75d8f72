"""The wall time per epoch that `TrainingLoop` spends outside the step.

Used by `bench/bench_backends.py` (`--parts=overhead`), one backend per
process. The model is a tiny dense net (flatten, one `Dense` layer) so
that its step takes well under a millisecond and hides nothing; the data,
batch and epoch are the official ones (the prepared CIFAR-10-LT training
set, batch 128: 96 steps an epoch), read as launch.train reads them on
the backend (`DatasetBuilder` on TensorFlow, `DeviceDataset` on JAX).

How it is measured, for one step runner (`Trainer`, or `JaxTrainer` with
one loop shape):

1. Step time alone, `S`: `runner.train_steps(iterator, 96)` (which
   returns the loss on the host, so it waits for the steps) on an
   iterator made before the timer starts (JAX: the epoch's
   `DeviceDataset.epoch`; TensorFlow: a repeated pipeline already
   running, so that no shuffle buffer fills inside the timing). The
   fastest of `repeats` calls, after an untimed call that compiles.
2. The loop, `L`: `TrainingLoop.run()` for `epochs` epochs, as
   launch.train builds it (`la_keras.runs.common.training_loop` with the run's
   flags, a real checkpoint store and TensorBoard writer in a temporary
   folder, the progress written to a pipe as in a log), timed from
   `run()` to its return, `repeats` times (each a new loop continuing the
   same run), after an untimed one-epoch loop (the eager ops around the
   step compile on first use); the fastest counts.
3. Overhead per epoch: `L / epochs - S`, in milliseconds: everything
   `run()` does besides the steps (a new epoch iterator, the loss checks,
   the train accuracy and learning rate, checkpoints, log lines,
   summaries, the progress bar), and whatever it makes the steps wait.

The fraction is of 0.53 s, an official epoch's 96 x 128 images at 23,000
images/s (an H100).
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time

OFFICIAL_EPOCH_SECONDS = 96 * 128 / 23000


def tiny_model(num_classes, image_shape):
    """Flatten and one dense layer: a step too small to hide overhead."""
    import keras

    return keras.Sequential(
        [
            keras.Input(image_shape),
            keras.layers.Flatten(),
            keras.layers.Dense(num_classes),
        ]
    )


def step_seconds(runner, iterators, num_steps, repeats):
    """The fastest of `repeats` `train_steps(iterator, num_steps)` calls.

    `iterators()` returns a fresh iterator with at least `num_steps`
    batches; the first call is untimed (compilation).
    """
    runner.train_steps(iterators(), num_steps)
    seconds = []
    for _ in range(repeats):
        iterator = iterators()
        start = time.perf_counter()
        runner.train_steps(iterator, num_steps)
        seconds.append(time.perf_counter() - start)
    return min(seconds)


def loop_seconds(config, runner, epoch_data, steps_per_epoch, store, epoch,
                 epochs, repeats):  # fmt: skip
    """The fastest of `repeats` timed `TrainingLoop.run()` of `epochs`
    epochs each, built by `la_keras.runs.common.training_loop` from `config`."""
    from absl import logging

    from la_keras.runs import common
    from la_keras.runs.model_dir import ModelDir
    from la_keras.training import Summaries

    logging.set_verbosity(logging.WARNING)  # launch.train's default
    _, save = ModelDir(config.model_dir).start(
        config, store, runner, epoch, chief=False
    )
    log_dir = tempfile.mkdtemp(prefix="loop_overhead_log_")
    seconds = []
    # An untimed epoch first: the eager ops around the step (metric result,
    # learning rate, finite check, checkpoint) compile on first use.
    for run_epochs in [1] + [epochs] * repeats:
        done = runner.step // steps_per_epoch
        loop = common.training_loop(
            config.replace(
                schedule=dataclasses.replace(
                    config.schedule, epochs=done + run_epochs
                )
            ),
            runner,
            epoch_data,
            steps_per_epoch,
            save,
            summaries=Summaries(log_dir),
            stop_requested=lambda: False,
        )
        start = time.perf_counter()
        loop.run()
        seconds.append(time.perf_counter() - start)
    return min(seconds[1:])


def overhead_row(step_s, loop_s, epochs, steps_per_epoch):
    """The figures of one runner: ms per epoch and fraction."""
    per_epoch = loop_s / epochs - step_s
    return {
        "step_ms": step_s * 1e3,
        "epoch_ms": loop_s / epochs * 1e3,
        "overhead_ms": per_epoch * 1e3,
        "fraction": per_epoch / OFFICIAL_EPOCH_SECONDS,
        "steps_per_epoch": steps_per_epoch,
        "epochs": epochs,
    }


def _folder(name):
    return os.path.join(tempfile.mkdtemp(prefix="loop_overhead_"), name)


def measure_tensorflow(config, args):
    """The overhead row of `Trainer` over launch.train's TF pipeline."""
    import keras
    import tensorflow as tf

    from la_keras.runs import common
    from la_keras.runs.train_tf import build_datasets
    from la_keras.runs.train_tf import train_data
    from la_keras.training import CheckpointStore
    from la_keras.training import Trainer

    config = config.replace(model_dir=_folder("run"))
    keras.utils.set_random_seed(config.data.seed)
    strategy = common.create_strategy(config)
    builder = build_datasets(config, strategy.num_replicas_in_sync)["train"]
    steps = builder.steps_per_epoch
    with strategy.scope():
        model = tiny_model(builder.info.num_classes, builder.info.image_shape)
        optimizer = config.schedule.optimizer(steps)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False)
    runner = Trainer(strategy, model, config.build_loss(builder.info),
                     optimizer, jit_compile=config.jit_compile)  # fmt: skip
    running = iter(
        strategy.distribute_datasets_from_function(
            lambda ctx: builder.dataset_fn(ctx, 0).repeat()
        )
    )
    step_s = step_seconds(runner, lambda: running, steps, args.repeats)
    store = CheckpointStore(_folder("checkpoints"), model=model,
                            optimizer=optimizer, epoch=epoch)  # fmt: skip
    epoch_data = train_data(strategy, builder)
    loop_s = loop_seconds(config, runner, epoch_data, steps, store, epoch,
                          args.overhead_epochs, args.repeats)  # fmt: skip
    row = overhead_row(step_s, loop_s, args.overhead_epochs, steps)
    row["variant"] = "Trainer + DatasetBuilder"
    return [row]


def measure_jax(config, args, loops):
    """The overhead rows of `JaxTrainer`, one per loop shape in `loops`."""
    import jax
    import keras

    from la_keras.runs import train_jax
    from la_keras.training.array_checkpoints import ArrayCheckpointStore
    from la_keras.training.jax_trainer import JaxTrainer

    config = config.replace(model_dir=_folder("run"))
    data = train_jax.device_dataset(config, None)
    steps = data.steps_per_epoch
    info = config.data.info()
    rows = []
    for loop in loops:
        keras.utils.set_random_seed(config.data.seed)
        model = tiny_model(info.num_classes, info.image_shape)
        optimizer = config.schedule.optimizer(steps)
        runner = JaxTrainer(model, config.build_loss(info), optimizer,
                            jit_compile=True, loop=loop)  # fmt: skip

        def fresh_epoch():
            iterator = data.epoch(0)
            jax.block_until_ready(iterator.order)
            return iterator

        step_s = step_seconds(runner, fresh_epoch, steps, args.repeats)
        epoch = keras.Variable(0, dtype="int32", trainable=False)
        store = ArrayCheckpointStore(
            _folder("checkpoints"), model=model.variables,
            optimizer=optimizer.variables, epoch=[epoch],
        )  # fmt: skip
        loop_s = loop_seconds(config, runner, data.epoch, steps, store, epoch,
                              args.overhead_epochs, args.repeats)  # fmt: skip
        row = overhead_row(step_s, loop_s, args.overhead_epochs, steps)
        row["variant"] = f"JaxTrainer + DeviceDataset, loop={loop}"
        rows.append(row)
    return rows


def print_rows(rows, batch, repeats):
    """Prints the overhead table of `(row, wall)` pairs (bench_backends)."""
    first = rows[0][0]
    print(
        f"\nPer-epoch overhead of TrainingLoop: a tiny dense net, "
        f"{first['steps_per_epoch']} steps an epoch (batch {batch}), "
        f"{first['epochs']} epochs timed (best of {repeats}); "
        "bench/loop_overhead.py says how"
    )
    official_ms = OFFICIAL_EPOCH_SECONDS * 1e3
    print(
        f"\n   {'backend':11s} {'path':44s} {'steps ms':>9s} {'epoch ms':>9s} "
        f"{'outside ms':>10s} {'of ' + format(official_ms, '.0f') + ' ms':>9s}"
    )
    for row, _ in rows:
        print(
            f"   {row['backend']:11s} {row['variant']:44s} "
            f"{row['step_ms']:9.1f} {row['epoch_ms']:9.1f} "
            f"{row['overhead_ms']:10.1f} {row['fraction'] * 100:8.1f}%"
        )
    print(
        "\n   steps ms: train_steps of one epoch's steps alone; epoch ms: "
        "TrainingLoop.run per epoch;\n   outside ms: the difference, per "
        "epoch (target <= 25 ms); of 534 ms: its share of an official\n   "
        "epoch at 23,000 images/s. Negative: the loop overlapped the host "
        "work with the steps."
    )
