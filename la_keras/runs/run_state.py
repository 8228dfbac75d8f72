"""The newest state of a run: its newest checkpoint, or its `model.keras`.

A JAX-backend run writes `<model_dir>/model.keras` when it ends, but its
checkpoints go on: a run trained further (`--extend`) and stopped by
SIGTERM saves a checkpoint and exits 75 without a new `model.keras`.
`launch.evaluate`, `launch.export` and `--init_from` read a run through
`newest_state`, which takes whichever of the two holds the later step:

- a checkpoint's step is in its name (`ckpt-<step>.npz` / `.index`);
- `model.keras`'s step is metrics.json's `step`: the same run writes
  metrics.json right after `model.keras`. If a kill fell between the two,
  metrics.json is older, and the checkpoint of the final step (saved before
  either) is taken, which holds the same weights.

At equal steps the checkpoint is read: the weights are the same, and the
model is rebuilt as the run built it.
"""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Any
from typing import NamedTuple

import keras
from absl import logging

from la_keras.runs import finetuning
from la_keras.runs import outputs
from la_keras.runs.errors import RunError
from la_keras.runs.model_dir import restore_latest

_STEP = re.compile(r"ckpt-(\d+)(\.npz|\.index)?$")


class RunState(NamedTuple):
    """A run's model as restored, and where from.

    Attributes:
        model: the Keras model (raw logits; LoRA merged if from model.keras).
        info: the dataset's `DatasetInfo`.
        path: the checkpoint or `model.keras` it was read from.
        step: the training step of those weights; None when unknown.
    """

    model: Any
    info: Any
    path: str
    step: int | None


def checkpoint_step(path: str) -> int | None:
    """The step in a checkpoint's name (`.../ckpt-12.npz` -> 12), or None."""
    match = _STEP.search(os.path.basename(path))
    return int(match.group(1)) if match else None


def newest_checkpoint_step(model_dir: str) -> int | None:
    """The largest step among the checkpoint files of either backend."""
    from la_keras.training.loop import checkpoint_dir

    directory = checkpoint_dir(model_dir)
    steps = [
        checkpoint_step(path)
        for pattern in ("ckpt-*.npz", "ckpt-*.index")
        for path in glob.glob(os.path.join(directory, pattern))
    ]
    steps = [step for step in steps if step is not None]
    return max(steps) if steps else None


def keras_model_step(model_dir: str) -> int | None:
    """The step of the run's `model.keras` (see the module doc), or None."""
    path = os.path.join(model_dir, "metrics.json")
    try:
        with open(path) as f:
            metrics = json.load(f)
    except (OSError, ValueError):
        return None
    if not metrics.get("keras_model") or metrics.get("step") is None:
        return None
    return int(metrics["step"])


def newest_state(config, checkpoint: str | None = None) -> RunState:
    """The run of `config.model_dir` at its newest step.

    Args:
        config: the run's `ResolvedConfig` (its data checked).
        checkpoint: read this checkpoint instead (`--checkpoint`).

    Raises:
        RunError: no checkpoint nor `model.keras`, or every
            checkpoint damaged and no `model.keras` (one line).
    """
    if checkpoint:
        model, info, path = restore_model(config, checkpoint)
        return _read(model, info, path, checkpoint_step(path))
    keras_path = os.path.join(config.model_dir, outputs.KERAS_MODEL)
    if not os.path.exists(keras_path):
        model, info, path = restore_model(config)
        return _read(model, info, path, checkpoint_step(path))
    keras_step = keras_model_step(config.model_dir)
    newest = newest_checkpoint_step(config.model_dir)
    if newest is None:
        return _load_keras_model(config, keras_path, keras_step)
    if keras_step is not None and keras_step > newest:
        return _load_keras_model(config, keras_path, keras_step)
    model, info, path = restore_model(config)
    step = checkpoint_step(path)
    if keras_step is not None and step is not None and step < keras_step:
        # The newer checkpoints were damaged and skipped.
        return _load_keras_model(config, keras_path, keras_step)
    if keras_step is None:
        logging.info(
            "%s: its step is unknown (no metrics.json of the run that wrote "
            "it); reading the newest checkpoint instead.",
            keras_path,
        )
    elif step is not None and step > keras_step:
        logging.info(
            "%s (step %d) is older than the newest checkpoint (step %d); "
            "reading the checkpoint.",
            keras_path,
            keras_step,
            step,
        )
    return _read(model, info, path, step)


def _load_keras_model(config, path: str, step: int | None) -> RunState:

    info = config.data.info()
    model = keras.saving.load_model(path).model
    return _read(model, info, path, step)


def _read(model, info, path: str, step: int | None) -> RunState:
    logging.info(
        "Read %s (step %s).", path, "unknown" if step is None else step
    )
    return RunState(model, info, path, step)


def restore_model(config, checkpoint: str | None = None):
    """The model of a launch.train run, restored from its checkpoint.

    A run of either backend: `.npz` checkpoints (the JAX backend's, read
    on any backend) or TensorFlow checkpoints (TensorFlow backend).

    Returns:
        `(model, info, checkpoint_path)`.
    """

    from la_keras.training import ArrayCheckpointStore
    from la_keras.training.array_checkpoints import list_array_checkpoints
    from la_keras.training.loop import checkpoint_dir

    info = config.data.info()
    model = finetuning.build_model(config, info)
    directory = checkpoint_dir(config.model_dir)
    arrays = ArrayCheckpointStore(
        directory, model=model.variables, expect_partial=True
    )
    if checkpoint and checkpoint.endswith(".npz"):
        return model, info, arrays.restore(checkpoint)
    if checkpoint:
        import tensorflow as tf

        from la_keras.training.checkpoints import model_trackables

        status = tf.train.Checkpoint(**model_trackables(model)).restore(
            checkpoint
        )
        status.expect_partial().assert_existing_objects_matched()
        return model, info, checkpoint
    if list_array_checkpoints(directory):
        store = arrays
    elif keras.backend.backend() != "tensorflow":
        if glob.glob(os.path.join(directory, "ckpt-*.index")):
            raise RunError(
                f"{directory} holds TensorFlow checkpoints: evaluate a run of "
                "the TensorFlow backend with the TensorFlow backend."
            )
        store = arrays  # none at all: "No checkpoint" below
    else:
        from la_keras.training import CheckpointStore

        store = CheckpointStore(directory, model=model)
    path = restore_latest(store)
    if not path:
        raise RunError(
            f"No checkpoint in {directory}: train first, or pass --checkpoint."
        )
    return model, info, path


def backbone_source(config):
    """`(weights, path, source_config)`: the backbone of the run in
    `config.init_from` (LoRA merged) at its newest state."""
    from la_keras.models import finetune
    from la_keras.runs.resolved import ResolvedConfig

    source_config = ResolvedConfig.read(config.init_from)
    if not source_config.backbone:
        raise RunError(
            f"--init_from={config.init_from}: that run trained "
            f"--model={source_config.model}, not a pretrained backbone; "
            "--init_from takes a run of one."
        )
    state = newest_state(source_config)
    source = finetune.merged(state.model)
    return finetune.backbone_of(source).get_weights(), state.path, source_config
