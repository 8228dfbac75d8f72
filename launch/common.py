"""Flags -> resolved run configuration, strategy, model and optimizer."""

from __future__ import annotations

import json
import os

import keras
import tensorflow as tf
from absl import app
from absl import logging

from la_keras import distribute
from la_keras import losses as losses_lib
from la_keras import models as models_lib
from la_keras import schedules
from la_keras.datasets import official
from launch.common_flags import LOSS_FLAGS

# Datasets whose official TFRecords and base_probs live in --data_home.
OFFICIAL_DATASETS = tuple(official.NUM_CLASSES)
# Datasets with a holdout split of their own (used when holdout_fraction=0).
OWN_HOLDOUT = ("imagenet_lt",)
# Official schedules, also for the TFDS-derived twins of the official sets.
_SCHEDULE_ALIASES = {
    "cifar10-lt": "cifar10-lt",
    "cifar10_lt": "cifar10-lt",
    "cifar100-lt": "cifar100-lt",
    "cifar100_lt": "cifar100-lt",
}
# The official release's `test` dataset: 2 epochs, warm-up to epoch 2.
_TEST_SCHEDULE = {"epochs": 2, "schedule": ((1.0, 2),)}
# Flags that must not change when a run resumes from its checkpoints.
RESUME_KEYS = ("dataset", "model", "train_batch_size", "mode", "loss", "seed")


def _schedule_defaults(dataset: str) -> dict | None:
    if dataset == "test":
        return _TEST_SCHEDULE
    key = _SCHEDULE_ALIASES.get(dataset)
    return schedules.OFFICIAL_SCHEDULES[key] if key else None


def resolve_config(flags_obj) -> dict:
    """Resolves defaults that depend on other flags; UsageError on conflicts.

    Returns:
        A JSON-ready dict: every flag of `define_flags` with its resolved
        value, plus `schedule` (the `(multiplier, epoch)` pairs) and
        `dataset_dir` (where the dataset reads from).
    """
    names = [
        "dataset", "data_home", "train_batch_size", "test_batch_size", "mode",
        "tau", "tb_log_dir", "model_dir", "data_dir", "export_dir", "seed",
        "strategy", "tpu", "model", "loss", "epochs", "base_learning_rate",
        "warmup_epochs", "lr_decay_epochs", "lr_decay_multipliers", "momentum",
        "nesterov", "weight_decay", "holdout_fraction", "ratio", "profile",
        "tau_grid", "jit_compile", "deterministic", "checkpoint_every_steps",
        "keep_checkpoints", "eval_every_epochs", "num_logical_cpus",
    ]  # fmt: skip
    names += list(LOSS_FLAGS)
    config = {name: getattr(flags_obj, name) for name in names}
    dataset = config["dataset"]
    if config["loss"] is None:
        config["loss"] = (
            "logit_adjusted" if config["mode"] == "loss" else "crossentropy"
        )
    elif config["mode"] != "loss" and config["loss"] != "crossentropy":
        logging.warning(
            "--mode=%s trains with --loss=%s; the official %s mode trains with "
            "plain cross-entropy.",
            config["mode"],
            config["loss"],
            config["mode"],
        )
    defaults = _schedule_defaults(dataset)
    if config["epochs"] is None:
        if defaults is None:
            raise app.UsageError(
                f"--dataset={dataset} has no official schedule: pass --epochs "
                "and --warmup_epochs (and optionally --lr_decay_epochs and "
                "--lr_decay_multipliers), or a --flagfile preset."
            )
        config["epochs"] = defaults["epochs"]
    if config["warmup_epochs"] is None and config["lr_decay_epochs"] is None:
        if defaults is None:
            raise app.UsageError(
                f"--dataset={dataset} has no official schedule: pass "
                "--warmup_epochs (0 for none)."
            )
        schedule = [list(pair) for pair in defaults["schedule"]]
    else:
        try:
            schedule = schedules.parse_schedule(
                config["warmup_epochs"] or 0.0,
                config["lr_decay_epochs"] or [],
                config["lr_decay_multipliers"] or [],
            )
        except ValueError as e:
            raise app.UsageError(str(e)) from e
        schedule = [list(pair) for pair in schedule]
    config["schedule"] = schedule
    config.update(resolve_data_config(flags_obj))
    if config["export_dir"] is None:
        config["export_dir"] = os.path.join(config["model_dir"], "export")
    return config


def resolve_data_config(flags_obj) -> dict:
    """The dataset flags with resolved holdout_fraction and dataset_dir."""
    names = (
        "dataset", "data_home", "data_dir", "ratio", "profile", "seed",
        "holdout_fraction", "test_batch_size", "tau", "tau_grid",
    )  # fmt: skip
    config = {name: getattr(flags_obj, name) for name in names}
    dataset = config["dataset"]
    if config["holdout_fraction"] is None:
        tfds_derived = dataset not in OFFICIAL_DATASETS + OWN_HOLDOUT
        config["holdout_fraction"] = 0.1 if tfds_derived else 0.0
    config["tau_grid"] = [float(t) for t in config["tau_grid"]]
    config["dataset_dir"] = (
        config["data_home"]
        if dataset in OFFICIAL_DATASETS
        else config["data_dir"]
    )
    return config


def has_holdout(config: dict) -> bool:
    return config["holdout_fraction"] > 0 or config["dataset"] in OWN_HOLDOUT


def create_strategy(config: dict) -> tf.distribute.Strategy:
    """The strategy named by --strategy; UsageError when it cannot be made."""
    if config["num_logical_cpus"] > 1:
        try:
            distribute.configure_logical_cpus(config["num_logical_cpus"])
        except RuntimeError as e:
            raise app.UsageError(
                "--num_logical_cpus must be set before TensorFlow initializes "
                f"its devices: {e}"
            ) from e
    try:
        return distribute.get_strategy(config["strategy"], tpu=config["tpu"])
    except (ValueError, RuntimeError) as e:
        raise app.UsageError(f"--strategy={config['strategy']}: {e}") from e


def restore_model(config: dict, checkpoint: str | None = None):
    """The model of a launch.train run, restored from its checkpoint.

    Args:
        config: the run's flags.json.
        checkpoint: a checkpoint path; default the latest in model_dir.

    Returns:
        `(model, info, checkpoint_path)`.
    """
    from la_keras import datasets

    path = checkpoint or tf.train.latest_checkpoint(
        checkpoint_dir(config["model_dir"])
    )
    if not path:
        raise app.UsageError(
            f"No checkpoint in {checkpoint_dir(config['model_dir'])}: train "
            "first, or pass --checkpoint."
        )
    _, info = datasets.load(
        config["dataset"],
        "train",
        config["dataset_dir"],
        ratio=config["ratio"],
        profile=config["profile"],
        holdout_fraction=config["holdout_fraction"],
        seed=config["seed"],
    )
    model = build_model(
        config["model"],
        info.num_classes,
        info.image_shape,
        config["weight_decay"],
    )
    status = tf.train.Checkpoint(model=model).restore(path)
    status.expect_partial().assert_existing_objects_matched()
    return model, info, path


def build_model(name: str, num_classes: int, image_shape, weight_decay: float):
    """Builds `--model`: official_resnet32, resnet<6n+2> or resnet50."""
    shape = tuple(image_shape)
    if name == "official_resnet32":
        return models_lib.official_resnet32(num_classes, shape, weight_decay)
    if name == "resnet50":
        return models_lib.resnet50(num_classes, shape, weight_decay)
    if name.startswith("resnet") and name[len("resnet") :].isdigit():
        try:
            return models_lib.cifar_resnet(
                int(name[len("resnet") :]), num_classes, shape, weight_decay
            )
        except ValueError as e:
            raise app.UsageError(f"--model={name}: {e}") from e
    raise app.UsageError(
        f"Unknown --model={name!r}. Known models: official_resnet32, "
        "resnet8 / resnet20 / resnet32 / resnet56 (any resnet<6n+2>), resnet50."
    )


def loss_kwargs(config: dict) -> dict:
    """The hyperparameters of `config["loss"]` given by loss flags."""
    name = config["loss"]
    kwargs = {"tau": config["tau"]} if name == "logit_adjusted" else {}
    for flag, (keyword, losses) in LOSS_FLAGS.items():
        if config.get(flag) is not None:
            if name not in losses:
                raise app.UsageError(
                    f"--{flag} applies to --loss={' / '.join(losses)}, not "
                    f"--loss={name}."
                )
            kwargs[keyword] = config[flag]
    return kwargs


def build_loss(config: dict, info) -> keras.losses.Loss:
    """`la_keras.losses.build(config["loss"], counts, **loss_kwargs)`.

    The class counts are the training set's (`info.train_counts`): the
    effective-number weights of class_balanced and DRW depend on absolute
    counts. The prior-based losses (logit_adjusted, balanced_softmax) get
    `info.priors`, which for the official TFRecord sets are the release's
    base_probs.
    """
    name = config["loss"]
    counts = info.train_counts
    if name in ("logit_adjusted", "balanced_softmax") or counts is None:
        counts = info.priors
    try:
        return losses_lib.build(name, counts, **loss_kwargs(config))
    except ValueError as e:
        raise app.UsageError(f"--loss={name}: {e}") from e


def build_optimizer(config: dict, steps_per_epoch: int) -> keras.optimizers.SGD:
    learning_rate = schedules.WarmupStepSchedule(
        config["base_learning_rate"], steps_per_epoch, config["schedule"]
    )
    return keras.optimizers.SGD(
        learning_rate, momentum=config["momentum"], nesterov=config["nesterov"]
    )


def write_flags(config: dict, flags_obj, directory: str) -> None:
    """Writes `flags.txt` (a --flagfile) and `flags.json` (resolved)."""
    tf.io.gfile.makedirs(directory)
    lines = []
    for name in config:
        if name in flags_obj and flags_obj[name].value is not None:
            lines.append(flags_obj[name].serialize())
    with tf.io.gfile.GFile(os.path.join(directory, "flags.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    with tf.io.gfile.GFile(os.path.join(directory, "flags.json"), "w") as f:
        json.dump(config, f, indent=2, sort_keys=True)


def read_flags_json(model_dir: str) -> dict:
    path = os.path.join(model_dir, "flags.json")
    if not tf.io.gfile.exists(path):
        raise app.UsageError(
            f"{path} not found: --model_dir must be the model_dir of a "
            "launch.train run."
        )
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def check_resume(config: dict, model_dir: str) -> None:
    """Refuses to resume a run whose defining flags changed."""
    path = os.path.join(model_dir, "flags.json")
    if not tf.io.gfile.exists(path):
        return
    previous = read_flags_json(model_dir)
    changed = {
        k: (previous.get(k), config[k])
        for k in RESUME_KEYS
        if previous.get(k) != config[k]
    }
    if changed and tf.train.latest_checkpoint(checkpoint_dir(model_dir)):
        raise app.UsageError(
            f"--model_dir={model_dir} holds checkpoints of a run with other "
            f"flags {changed} (previous, now). Use a new --model_dir."
        )


def checkpoint_dir(model_dir: str) -> str:
    return os.path.join(model_dir, "checkpoints")
