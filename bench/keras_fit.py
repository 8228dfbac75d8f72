"""Keras's own `model.fit`, timed as a Keras user would run it.

What a Keras user would pick instead of launch.train: `model.compile` with
the same model, loss and optimizer, `jit_compile` left to Keras ("auto":
XLA on JAX and on TensorFlow with an accelerator, not on a CPU-only
TensorFlow), the train accuracy as a metric (launch.train's loop computes it
too), and `model.fit` over the same `tf.data` pipeline as launch.train's
TensorFlow path (`DatasetBuilder`: the official crop and flip, batch 128),
repeated, on either backend. `steps_per_execution` is tuned: each value of
`values` is timed on a new model, and the fastest is reported.

Timing: a callback notes the time at each `on_train_batch_end` (once per
execution of `steps_per_execution` steps) after reading the loss, which
waits for the steps (Keras's progress bar reads it too). The first
executions covering at least `warmup` steps are untimed (compilation);
the images/s are those of the next executions covering at least `steps`
steps.
"""

from __future__ import annotations

import math
import time

import keras


class _Clock(keras.callbacks.Callback):
    """Notes `(steps done, time)` at the end of every execution."""

    def __init__(self, steps_per_execution):
        super().__init__()
        self.steps_per_execution = steps_per_execution
        self.marks = []

    def on_train_batch_end(self, batch, logs=None):
        float((logs or {}).get("loss", 0.0))  # waits for the steps
        done = (len(self.marks) + 1) * self.steps_per_execution
        self.marks.append((done, time.perf_counter()))


def fit_images_per_second(build, dataset, batch, steps, warmup, values):
    """`(best images/s, best steps_per_execution, {value: images/s})`.

    Args:
        build: returns a new `(model, loss, optimizer)`.
        dataset: a repeated `tf.data.Dataset` of `(images, labels)` batches.
        batch: images per step.
        steps, warmup: timed and untimed steps (rounded up to executions).
        values: the `steps_per_execution` values to try.
    """
    rates = {}
    for value in values:
        model, loss, optimizer = build()
        model.compile(
            optimizer=optimizer,
            loss=loss,
            metrics=["sparse_categorical_accuracy"],
            steps_per_execution=value,
        )
        warm = max(1, math.ceil(warmup / value))
        timed = math.ceil(steps / value)
        clock = _Clock(value)
        model.fit(
            dataset,
            epochs=1,
            steps_per_epoch=(warm + timed) * value,
            callbacks=[clock],
            verbose=0,
        )
        (start_step, start), (end_step, end) = (
            clock.marks[warm - 1],
            clock.marks[-1],
        )
        rates[value] = (end_step - start_step) * batch / (end - start)
    best = max(rates, key=rates.get)
    return rates[best], best, rates


def reference_rows(config, args):
    """bench_backends' rows of what launch.train is compared with, on this
    backend: `model.fit` and, on TensorFlow, the official eager loop
    (`bench/official_loop.py`), on `config`'s model and training data
    (`args`: batch, steps, warmup, fit_steps_per_execution)."""
    import official_loop

    builder = config.data.builders()["train"]
    info = builder.info

    def build():
        keras.utils.set_random_seed(config.data.seed)
        model = config.build_model(info.num_classes, info.image_shape)
        optimizer = config.schedule.optimizer(builder.steps_per_epoch)
        return model, config.build_loss(info), optimizer

    values = [int(v) for v in args.fit_steps_per_execution.split(",")]
    rate, best, rates = fit_images_per_second(
        build, builder.dataset_fn().repeat(), args.batch, args.steps,
        args.warmup, values,
    )  # fmt: skip
    rows = [
        dict(kind="fit", images_per_s=rate, tried=rates,
             variant=f"Keras model.fit, steps_per_execution={best}")
    ]  # fmt: skip
    if keras.backend.backend() == "tensorflow":
        images, labels, _ = config.data.arrays("train")
        rate = official_loop.images_per_second(
            images, labels, info.priors, max(args.steps // 2, 3),
            args.warmup, args.batch,
        )  # fmt: skip
        rows.append(
            dict(kind="official", images_per_s=rate,
                 variant="official eager GradientTape loop")
        )  # fmt: skip
    return rows
