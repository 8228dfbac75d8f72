"""`launch.train` on Keras's JAX backend: `KERAS_BACKEND=jax python -m launch.train`.

The same flags, training core (`la_keras.training.TrainingLoop`), model_dir
layout, metrics.json and plot as on TensorFlow, with the JAX step runner
(`JaxTrainer`), the training set resident on the device with the official
crop and flip inside the compiled batch function (`DeviceDataset`), and
backend-neutral checkpoints (`ArrayCheckpointStore`). The trained model is
written as `<model_dir>/model.keras`: a `LogitAdjustedModel` in post-hoc
mode with the served tau, which `launch.export` (on TensorFlow) turns into
the serving SavedModel.

What this first version does not do yet: several devices
(`keras.distribution`), TensorBoard summaries, and running without
TensorFlow installed (the datasets are read through `la_keras.datasets`).
`--strategy` other than auto / one_device is refused.
"""

from __future__ import annotations

import os

import keras
import numpy as np
from absl import app
from absl import logging

from la_keras.datasets import preprocess_images
from la_keras.models import LogitAdjustedModel
from la_keras.training.array_checkpoints import ArrayCheckpointStore
from la_keras.training.checkpoints import checkpoint_dir
from la_keras.training.jax_data import DeviceDataset
from la_keras.training.jax_trainer import JaxTrainer
from la_keras.training.preemption import StopSignal
from launch import common
from launch import lock
from launch import outputs
from launch import reporting


def _check_flags(config) -> None:
    if config.strategy not in ("auto", "one_device"):
        raise app.UsageError(
            f"--strategy={config.strategy} needs the TensorFlow backend; on "
            "KERAS_BACKEND=jax launch.train trains on one device."
        )
    if config.num_logical_cpus > 1:
        raise app.UsageError("--num_logical_cpus needs the TensorFlow backend.")


def _eval_batches(images, labels, batch_size):
    for start in range(0, len(labels), batch_size):
        batch = images[start : start + batch_size]
        # The evaluation preprocessing of the TensorFlow pipeline and serving.
        x = np.asarray(preprocess_images(batch, "cifar", training=False))
        yield x, labels[start : start + batch_size]


def run(config, flags_obj=None) -> dict:
    """Trains on JAX, evaluates, writes model.keras; returns the metrics."""
    _check_flags(config)
    keras.utils.set_random_seed(config.data.seed)
    outputs.make_dir(config.model_dir, "--model_dir")
    with lock.held(config.model_dir), StopSignal() as stop:
        return _run(config, flags_obj, stop)


def _run(config, flags_obj, stop) -> dict:
    train_images, train_labels, info = config.data.arrays("train")
    if info.preprocessing != "cifar":
        raise app.UsageError(
            f"--dataset={config.data.dataset}: the JAX backend trains the "
            "CIFAR-recipe datasets held in memory; ImageNet-size sets stay on "
            "the TensorFlow backend."
        )
    evals = {s: config.data.arrays(s)[:2] for s in config.data.eval_splits}
    data = DeviceDataset(
        train_images,
        train_labels,
        config.data.train_batch_size,
        config.data.seed,
        config.data.crop_padding,
    )
    model = config.build_model(info.num_classes, info.image_shape)
    loss = config.build_loss(info)
    optimizer = config.schedule.optimizer(data.steps_per_epoch)
    trainer = JaxTrainer(model, loss, optimizer)
    epoch = keras.Variable(0, dtype="int32", trainable=False, name="epoch")
    store = ArrayCheckpointStore(
        checkpoint_dir(config.model_dir),
        config.keep_checkpoints,
        model=model.variables,
        optimizer=optimizer.variables,
        epoch=[epoch],
    )
    config.check_resume(has_checkpoint=store.latest is not None)
    restored = common.restore_latest(store)
    if restored:
        logging.info("Resumed from %s at step %d.", restored, trainer.step)
    config.write(config.model_dir, flags_obj)

    def save(step, epochs_done):
        epoch.assign(epochs_done)
        return store.save(step)

    def evaluate(_epoch, _step):
        logits = {
            split: trainer.predict(
                _eval_batches(*evals[split], config.data.test_batch_size)
            )
            for split in evals
        }
        metrics = reporting.evaluate_logits(
            config, info.train_counts, info.priors, logits["test"],
            logits.get("holdout"),
        )  # fmt: skip
        reporting.log_metrics(metrics)
        return metrics

    loop = common.training_loop(
        config,
        trainer,
        data.epoch,
        data.steps_per_epoch,
        save,
        last_checkpoint=restored,
        epoch_hooks=[loss],
        on_epoch_end=evaluate,
        stop_requested=stop.requested,
    )
    metrics = common.run_training(
        config, loop, evaluate, epoch, len(train_labels)
    )
    metrics["backend"] = "jax"
    tau = reporting.served_tau(config, metrics)
    metrics["served_tau"] = tau
    metrics["export_dir"] = None
    metrics["keras_model"] = _write_keras_model(config, model, info, tau)
    outputs.write_json(os.path.join(config.model_dir, "metrics.json"), metrics)
    reporting.plot_run(config, info, metrics)
    return metrics


def _write_keras_model(config, model, info, tau) -> str:
    """`model.keras`: the post-hoc `LogitAdjustedModel` with the served tau."""
    if tau is None:
        classifier = LogitAdjustedModel(model, info.priors, tau=0.0)
    else:
        classifier = LogitAdjustedModel(model, info.priors, tau=tau)
    path = os.path.join(config.model_dir, outputs.KERAS_MODEL)
    partial = os.path.join(config.model_dir, f".partial.{outputs.KERAS_MODEL}")
    classifier.save(partial)
    os.replace(partial, path)
    return path
