"""Training on TensorFlow (the default backend): the `tf.distribute` wiring.

The training core of `la_keras.training` (`TrainingLoop`) with the
`tf.distribute` step runner (`Trainer`), the `DatasetBuilder` pipelines,
`CheckpointStore` and TensorBoard summaries; writes metrics.json, the
per-class plot and the serving SavedModel. OneDevice, Mirrored,
MultiWorkerMirrored and TPU strategies; only the chief writes the run's
files. `la_keras.runs.train` picks this module or
`la_keras/runs/train_jax.py` by Keras's backend.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from absl import logging

from la_keras import distribute
from la_keras import serving
from la_keras.models import finetune
from la_keras.runs import common
from la_keras.runs import finetuning
from la_keras.runs import outputs
from la_keras.runs import plots
from la_keras.runs import reporting
from la_keras.runs.model_dir import ModelDir
from la_keras.training import CheckpointStore
from la_keras.training import Summaries
from la_keras.training import Trainer
from la_keras.training.checkpoints import checkpoint_dir
from la_keras.training.preemption import StopSignal


def train_data(strategy, builder):
    """`epoch_data(epoch, skip)` of the `TrainingLoop`: one distributed epoch.

    Each epoch's shuffle and augmentation are built anew, their random
    draws a function of (seed, epoch) passed to their ops
    (`DatasetBuilder.dataset_fn`), so that a run resumed in a new process
    sees the batches of an uninterrupted one, and the `TrainingLoop` can
    build the next epoch on its data thread while this one trains: nothing
    here touches process-wide TensorFlow state. They all read the same
    source, decoded and cached in memory by the first epoch
    (`DatasetBuilder.source`).
    """

    def per_pipeline(ctx, epoch, skip):
        # `skip` counts global steps; each step takes one batch from every
        # replica that an input pipeline feeds.
        replicas = ctx.num_replicas_in_sync // ctx.num_input_pipelines
        return builder.dataset_fn(ctx, epoch).skip(skip * max(replicas, 1))

    def epoch_data(epoch, skip):
        dataset = strategy.distribute_datasets_from_function(
            lambda ctx: per_pipeline(ctx, epoch, skip)
        )
        return iter(dataset)

    return epoch_data


def run(config, strategy_override=None, options=None) -> dict:
    """Trains, evaluates and exports on TensorFlow; returns the metrics.

    Args:
        config: a `ResolvedConfig`.
        strategy_override: a `tf.distribute.Strategy` to use instead of
            `config.strategy`.
        options: the run's `RunConfig`, for flags.txt.
    """
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.data.seed)
    strategy = strategy_override or common.create_strategy(config)
    chief = distribute.is_chief(strategy)
    with (
        ModelDir(config.model_dir).held(chief, config.lock_timeout),
        StopSignal() as stop,
    ):
        return _run(config, strategy, chief, options, stop)


def build_datasets(config, num_replicas: int) -> dict:
    """Builders of train and each evaluation split; UsageError if bad."""
    builders = config.data.builders()
    common.check_batch_sizes(builders, num_replicas)
    return builders


def feature_batches(config):
    """The training set, preprocessed for evaluation, as numpy batches."""
    for images, labels in config.data.builder("train", training=False).build():
        yield images.numpy(), labels.numpy()


def _run(config, strategy, chief, options, stop) -> dict:
    builders = build_datasets(config, strategy.num_replicas_in_sync)
    info = builders["train"].info
    reporting.log_skipped(info)
    steps_per_epoch = builders["train"].steps_per_epoch
    with strategy.scope():
        model = common.build_model(
            config,
            info,
            fresh=not finetuning.has_checkpoint(config.model_dir),
            feature_batches=lambda: feature_batches(config),
        )
        loss = config.build_loss(info)
        optimizer = config.schedule.optimizer(steps_per_epoch)
        epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    trainer = Trainer(
        strategy, model, loss, optimizer, jit_compile=config.jit_compile
    )
    write_dir = distribute.worker_dir(config.model_dir, strategy)
    store = CheckpointStore(
        checkpoint_dir(config.model_dir),
        config.keep_checkpoints,
        write_directory=checkpoint_dir(write_dir),
        model=model,
        optimizer=optimizer,
        epoch=epoch,
    )
    restored, save = ModelDir(config.model_dir).start(
        config, store, trainer, epoch, chief, options
    )
    summaries = Summaries(config.tb_log_dir if chief else None)
    logging.info(
        "Training %s on %s (%d examples, %d classes), mode=%s loss=%s, %d "
        "epochs x %d steps, %d replicas.",
        config.model, config.data.dataset, builders["train"].num_examples,
        info.num_classes, config.mode, config.loss, config.schedule.epochs,
        steps_per_epoch, strategy.num_replicas_in_sync,
    )  # fmt: skip

    def evaluate(_epoch, step):
        return _evaluate(
            config, trainer, strategy, builders, info, summaries, step
        )

    loop = common.training_loop(
        config,
        trainer,
        train_data(strategy, builders["train"]),
        steps_per_epoch,
        save,
        last_checkpoint=restored,
        epoch_hooks=[loss],
        on_epoch_end=evaluate,
        stop_requested=lambda: trainer.any_worker(stop.requested()),
        summaries=summaries,
        verbose=chief,
    )
    metrics = common.run_training(
        config, loop, evaluate, epoch, builders["train"].num_examples
    )
    metrics.update(reporting.dataset_facts(info))
    metrics.update(reporting.model_facts(config, model))
    tau = reporting.served_tau(config, metrics)
    metrics["served_tau"] = tau
    metrics["export_dir"] = config.export_dir
    _write_outputs(config, strategy, chief, model, info, metrics, write_dir)
    return metrics


def _write_outputs(config, strategy, chief, model, info, metrics, write_dir):
    tau = metrics["served_tau"]
    export_dir = config.export_dir if chief else write_dir + "_export"
    with outputs.atomic_dir(export_dir) as tmp:
        serving.export_saved_model(
            finetune.merged(model), tmp, info.image_shape, info.preprocessing,
            priors=None if tau is None else info.priors, tau=tau or 0.0,
            class_names=info.class_names, resize=info.resize,
            **reporting.serving_rule(config, info, tau),
        )  # fmt: skip
    if not chief:
        distribute.cleanup_worker_dir(export_dir, config.model_dir, strategy)
        distribute.cleanup_worker_dir(write_dir, config.model_dir, strategy)
        return
    ModelDir(config.model_dir).write_metrics(metrics)
    plots.plot_run(config, info, metrics)
    logging.info(
        "Wrote %s/metrics.json; SavedModel in %s.",
        config.model_dir,
        config.export_dir,
    )


def _evaluate(config, trainer, strategy, builders, info, summaries, step):
    logits = {
        split: trainer.predict(
            strategy.distribute_datasets_from_function(
                builders[split].dataset_fn
            )
        )
        for split in config.data.eval_splits
    }
    return reporting.report_test(config, info, logits, summaries, step)
