"""Train a long-tail classifier: `python -m launch.train`.

Mirrors the official release (`python -m logit_adjustment.main`) with the
same flags and semantics, on a custom distributed loop (`la_keras.training`)
with checkpoints, resumption, metrics.json, a per-class plot and a SavedModel:

    python -m launch.train --flagfile=launch/configs/cifar10_lt.cfg \\
        --mode=loss --model_dir=/tmp/cifar10_lt_loss

Rerunning the same command after an interruption resumes from the latest
checkpoint in --model_dir.

`--loss` takes any name of `la_keras.losses.names()`; its hyperparameters
have their own flags (`--ldam_max_m`, `--ldam_s`, `--drw_start_epoch`,
`--drw_beta`, `--eql_lambda`, `--eql_gamma`, `--cb_beta`, `--focal_gamma`),
e.g. `--loss=ldam_drw --ldam_s=1 --drw_start_epoch=160`. A loss with an
`on_epoch_begin(epoch)` method (LDAM's deferred re-weighting) is called at
the start of every epoch, also the first one after a resume.
"""

from __future__ import annotations

import os
import sys
import time

import keras
import numpy as np
import tensorflow as tf
from absl import app
from absl import flags
from absl import logging

from la_keras import distribute
from la_keras import serving
from la_keras.datasets import DatasetBuilder
from la_keras.training import Trainer
from la_keras.training import epoch_seed
from launch import common
from launch import common_flags
from launch import reporting


class TrainingDivergedError(RuntimeError):
    """The training loss became NaN or infinite."""


def _builder(config, split, batch_size, training):
    return DatasetBuilder(
        config["dataset"],
        split,
        batch_size,
        training,
        config["dataset_dir"],
        ratio=config["ratio"],
        profile=config["profile"],
        holdout_fraction=config["holdout_fraction"],
        seed=config["seed"],
    )


def build_datasets(config: dict, num_replicas: int) -> dict:
    """Train / test (/ holdout) builders; UsageError for bad data flags."""
    try:
        builders = {
            "train": _builder(
                config, "train", config["train_batch_size"], True
            ),
            "test": _builder(config, "test", config["test_batch_size"], False),
        }
        if common.has_holdout(config):
            builders["holdout"] = _builder(
                config, "holdout", config["test_batch_size"], False
            )
    except (ValueError, FileNotFoundError) as e:
        raise app.UsageError(f"--dataset={config['dataset']}: {e}") from e
    for split, builder in builders.items():
        try:
            builder.per_replica_batch_size(num_replicas)
        except ValueError:
            flag = "train_batch_size" if split == "train" else "test_batch_size"
            raise app.UsageError(
                f"--{flag}={builder.global_batch_size} is not divisible by the "
                f"{num_replicas} replicas of the strategy."
            ) from None
    return builders


def predict(trainer, strategy, builder):
    return trainer.predict(
        strategy.distribute_datasets_from_function(builder.dataset_fn)
    )


def _epoch_dataset(strategy, builder, seed, epoch, skip):
    # Data order and augmentation are a function of (seed, epoch) only.
    tf.random.set_seed(epoch_seed(seed, epoch))
    return strategy.distribute_datasets_from_function(
        lambda ctx: builder.dataset_fn(ctx).skip(skip)
    )


def run(flags_obj, strategy_override=None) -> dict:
    """Trains, evaluates and exports; returns the final metrics dict."""
    config = common.resolve_config(flags_obj)
    if config["deterministic"]:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config["seed"])
    strategy = strategy_override or common.create_strategy(config)
    chief = distribute.is_chief(strategy)
    model_dir = config["model_dir"]
    builders = build_datasets(config, strategy.num_replicas_in_sync)
    info = builders["train"].info
    steps_per_epoch = builders["train"].steps_per_epoch
    total_steps = config["epochs"] * steps_per_epoch

    with strategy.scope():
        model = common.build_model(
            config["model"],
            info.num_classes,
            info.image_shape,
            config["weight_decay"],
        )
        loss = common.build_loss(config, info)
        optimizer = common.build_optimizer(config, steps_per_epoch)
        epoch_var = tf.Variable(
            0, dtype=tf.int64, trainable=False, name="epoch"
        )
    trainer = Trainer(
        strategy, model, loss, optimizer, jit_compile=config["jit_compile"]
    )

    common.check_resume(config, model_dir)
    write_dir = distribute.worker_dir(model_dir, strategy)
    checkpoint = tf.train.Checkpoint(
        model=model, optimizer=optimizer, epoch=epoch_var
    )
    manager = tf.train.CheckpointManager(
        checkpoint,
        common.checkpoint_dir(write_dir),
        max_to_keep=config["keep_checkpoints"],
        step_counter=optimizer.iterations,
    )
    latest = tf.train.latest_checkpoint(common.checkpoint_dir(model_dir))
    if latest:
        checkpoint.restore(latest).assert_existing_objects_matched()
        logging.info("Resumed from %s at step %d.", latest, trainer.step)
    if chief:
        common.write_flags(config, flags_obj, model_dir)
        train_writer = tf.summary.create_file_writer(
            os.path.join(config["tb_log_dir"], "train")
        )
        test_writer = tf.summary.create_file_writer(
            os.path.join(config["tb_log_dir"], "test")
        )
    else:
        train_writer = test_writer = tf.summary.create_noop_writer()
    logging.info(
        "Training %s on %s (%d examples, %d classes), mode=%s loss=%s, %d "
        "epochs x %d steps, %d replicas.",
        config["model"], config["dataset"], builders["train"].num_examples,
        info.num_classes, config["mode"], config["loss"], config["epochs"],
        steps_per_epoch, strategy.num_replicas_in_sync,
    )  # fmt: skip

    def save():
        manager.save(checkpoint_number=trainer.step)

    step = trainer.step
    every = config["checkpoint_every_steps"]
    start_time, start_step = time.time(), step
    while step < total_steps:
        epoch, in_epoch = divmod(step, steps_per_epoch)
        if hasattr(loss, "on_epoch_begin"):
            # Per-epoch loss state (LDAM's deferred re-weighting), set again
            # on resume: it is not in the checkpoint.
            loss.on_epoch_begin(epoch)
        iterator = iter(
            _epoch_dataset(
                strategy, builders["train"], config["seed"], epoch, in_epoch
            )
        )
        trainer.train_accuracy.reset_state()
        epoch_start, epoch_first_step, loss_sum = time.time(), step, 0.0
        while in_epoch < steps_per_epoch:
            chunk = steps_per_epoch - in_epoch
            if every:
                chunk = min(chunk, every - step % every)
            chunk_loss = trainer.train_steps(iterator, chunk)
            if not np.isfinite(chunk_loss):
                raise TrainingDivergedError(
                    f"Training loss is {chunk_loss} between steps {step} and "
                    f"{step + chunk} (epoch {epoch}); stopped. The last good "
                    f"checkpoint ({manager.latest_checkpoint or 'none'}) is "
                    "kept. Lower --base_learning_rate or check the data."
                )
            step += chunk
            in_epoch += chunk
            loss_sum += chunk_loss
            with train_writer.as_default():
                reporting.scalar("batch loss", chunk_loss / chunk, step=step)
            if every and step % every == 0 and in_epoch < steps_per_epoch:
                save()
        epoch_var.assign(epoch + 1)
        save()
        train_acc = float(trainer.train_accuracy.result())
        with train_writer.as_default():
            reporting.scalar("accuracy", train_acc, step=step)
            reporting.scalar("learning rate", trainer.learning_rate, step=step)
        elapsed = time.time() - epoch_start
        images_per_s = (
            (step - epoch_first_step) * config["train_batch_size"] / elapsed
        )
        rate = (time.time() - start_time) / max(step - start_step, 1)
        logging.info(
            "epoch %d/%d step %d: loss %.4f  train acc %.4f  %.1f images/s  "
            "ETA %s",
            epoch + 1, config["epochs"], step, loss_sum / (step - epoch_first_step),
            train_acc, images_per_s, reporting.hms(rate * (total_steps - step)),
        )  # fmt: skip
        if (epoch + 1) % config[
            "eval_every_epochs"
        ] == 0 and step < total_steps:
            _evaluate(
                config, trainer, strategy, builders, info, test_writer, step
            )

    metrics = _evaluate(
        config, trainer, strategy, builders, info, test_writer, step
    )
    metrics.update(
        {k: config[k] for k in ("dataset", "mode", "loss", "model", "seed")},
        step=trainer.step,
        epoch=int(epoch_var.numpy()),
    )
    tau = reporting.served_tau(config, metrics)
    metrics["served_tau"] = tau
    export_dir = (
        config["export_dir"]
        if chief
        else distribute.worker_dir(model_dir, strategy)
    )
    serving.export_saved_model(
        model, export_dir, info.image_shape, info.preprocessing,
        priors=None if tau is None else info.priors, tau=tau or 0.0,
    )  # fmt: skip
    metrics["export_dir"] = config["export_dir"]
    if chief:
        reporting.write_json(metrics, os.path.join(model_dir, "metrics.json"))
        curves = {"raw": metrics["test"]["raw"]["per_class_accuracy"]}
        for key in ("adjusted", "adjusted_tuned"):
            report = metrics["test"].get(key)
            if report is not None:
                label = f"adjusted (tau={report['tau']:g})"
                curves[label] = report["per_class_accuracy"]
        reporting.plot_per_class(
            info.train_counts,
            curves,
            reporting.plot_path(model_dir),
            f"{config['dataset']} {config['model']} mode={config['mode']}",
        )
        logging.info(
            "Wrote %s/metrics.json; SavedModel in %s.", model_dir, export_dir
        )
    else:
        distribute.cleanup_worker_dir(export_dir, model_dir, strategy)
        distribute.cleanup_worker_dir(write_dir, model_dir, strategy)
    return metrics


def _evaluate(config, trainer, strategy, builders, info, writer, step) -> dict:
    test = predict(trainer, strategy, builders["test"])
    holdout = None
    if "holdout" in builders:
        holdout = predict(trainer, strategy, builders["holdout"])
    metrics = reporting.evaluate_logits(
        config, info.train_counts, info.priors, test, holdout
    )
    reporting.write_test_summaries(writer, metrics, step, config["mode"])
    reporting.log_metrics(metrics)
    return metrics


def main(_):
    try:
        run(flags.FLAGS)
    except (app.UsageError, TrainingDivergedError) as e:
        # One clear line on stderr, exit status 1, no traceback.
        sys.exit(f"launch.train: error: {e}")


if __name__ == "__main__":
    common_flags.define_flags()
    app.run(main)
