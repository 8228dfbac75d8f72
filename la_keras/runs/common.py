"""What both backends' training shares: the strategy, the loop, a restore.

TensorFlow is imported only by what needs it (the strategy, TensorFlow
checkpoints), so the entry points also run on Keras's JAX backend where
TensorFlow is not installed.
"""

from __future__ import annotations

from absl import logging

from la_keras import distribute
from la_keras.runs.errors import RunError
from la_keras.runs.model_dir import ModelDir


def create_strategy(config):
    """The `tf.distribute.Strategy` named by --strategy; UsageError when it
    cannot be made."""
    if config.num_logical_cpus > 1:
        try:
            distribute.configure_logical_cpus(config.num_logical_cpus)
        except RuntimeError as e:
            raise RunError(
                "--num_logical_cpus must be set before TensorFlow initializes "
                f"its devices: {e}"
            ) from e
    try:
        return distribute.get_strategy(config.strategy, tpu=config.tpu)
    except (ValueError, RuntimeError) as e:
        raise RunError(f"--strategy={config.strategy}: {e}") from e


def check_batch_sizes(builders: dict, num_replicas: int) -> None:
    """UsageError if a global batch does not split over the replicas."""
    for split, builder in builders.items():
        try:
            builder.per_replica_batch_size(num_replicas)
        except ValueError:
            flag = "train_batch_size" if split == "train" else "test_batch_size"
            raise RunError(
                f"--{flag}={builder.global_batch_size} is not divisible by the "
                f"{num_replicas} replicas of the strategy."
            ) from None


def build_model(config, info, fresh: bool, feature_batches):
    """`finetuning.build_model` of a training run, which starts a new run
    from the newest state of `--init_from`'s run (`run_state`)."""
    from la_keras.runs import finetuning
    from la_keras.runs import run_state

    return finetuning.build_model(
        config,
        info,
        fresh,
        feature_batches,
        backbone_source=lambda: run_state.backbone_source(config),
    )


# How often a run writes its TensorBoard scalars and epoch log lines (all of
# them, in one batch): seldom enough for half-second epochs.
LOG_EVERY_SECONDS = 5.0


def training_loop(config, runner, train_data, steps_per_epoch, save, **kwargs):
    """The `TrainingLoop` of a run: its schedule, cadence and progress bar.

    Args:
        config: the `ResolvedConfig`.
        runner: the step runner (`Trainer` or `JaxTrainer`).
        train_data, steps_per_epoch, save: as for `TrainingLoop`.
        **kwargs: `TrainingLoop` keywords (`epoch_hooks`, `on_epoch_end`,
            `stop_requested`, `summaries`), `verbose` (draw the bar) and
            `last_checkpoint` (the checkpoint resumed from).
    """
    from la_keras.training import Progress
    from la_keras.training import TrainingLoop

    verbose_bar = kwargs.pop("verbose", True) and show_progress()
    last_checkpoint = kwargs.pop("last_checkpoint", None)
    loop = TrainingLoop(
        runner,
        train_data,
        steps_per_epoch,
        config.schedule.epochs,
        save,
        checkpoint_every_steps=config.checkpoint_every_steps,
        checkpoint_every_seconds=config.checkpoint_every_seconds,
        log_every_seconds=LOG_EVERY_SECONDS,
        max_chunk_steps=config.steps_per_loop,
        eval_every_epochs=config.eval_every_epochs,
        progress=Progress(
            config.schedule.epochs * steps_per_epoch,
            config.data.train_batch_size,
            verbose=verbose_bar,
        ),
        **kwargs,
    )
    loop.last_checkpoint = last_checkpoint
    return loop


def run_training(config, loop, evaluate, epoch, train_examples):
    """Runs `loop`, evaluates the final model; returns the metrics dict.

    A rerun of a finished run trains no step: its figures of the training
    (`reporting.run_facts`: images/s and the like) are then the previous
    metrics.json's, not a speed measured over zero steps.

    Args:
        config: the `ResolvedConfig`.
        loop: the `TrainingLoop` (see `training_loop`).
        evaluate: `evaluate(epoch, step)` returning the test metrics.
        epoch: the checkpointed epoch counter (a variable of any backend).
        train_examples: the training set's size.
    """
    import keras

    from la_keras.runs import reporting

    first_step = loop.runner.step
    step = loop.run()
    metrics = evaluate(None, step)
    epochs_done = int(keras.ops.convert_to_numpy(epoch))
    facts = reporting.run_facts(
        config, loop, loop.runner.step, epochs_done, train_examples
    )
    if loop.runner.step == first_step:
        facts.update(ModelDir(config.model_dir).previous_facts(facts))
    metrics.update(facts)
    return metrics


def verbose() -> bool:
    """True when the log level asks for INFO logs (and tracebacks)."""
    return logging.get_verbosity() >= logging.INFO


def show_progress() -> bool:
    """Draw progress bars: by default, not when INFO logs are asked for."""
    return not verbose()
