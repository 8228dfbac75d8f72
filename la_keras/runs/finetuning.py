"""The model of a run: built, started from pretrained weights, prepared.

One place for both backends and every entry point: `build_model` makes the
registry model; a new run (no checkpoint yet) then loads its first weights
(`--pretrained`, or `--init_from` an earlier run's backbone), initialises
the head (`--head_init`), and sets what trains (`--finetune`). A resumed
run, `launch.evaluate` and `launch.export` only build and prepare: the
weights come from the checkpoint, so the weights file need not exist then.
"""

from __future__ import annotations

import glob
import os

from absl import logging

from la_keras.models import finetune
from la_keras.models import registry
from la_keras.models.specs import HUB_PREFIX
from la_keras.runs import reporting
from la_keras.runs.errors import RunError


def has_checkpoint(model_dir: str) -> bool:
    """Whether `model_dir` holds a checkpoint of either backend."""
    from la_keras.training.array_checkpoints import list_array_checkpoints
    from la_keras.training.loop import checkpoint_dir

    directory = checkpoint_dir(model_dir)
    if "://" in directory:
        import tensorflow as tf

        return bool(tf.io.gfile.glob(os.path.join(directory, "ckpt-*")))
    if list_array_checkpoints(directory):
        return True
    return bool(glob.glob(os.path.join(directory, "ckpt-*.index")))


def build_model(
    config,
    info,
    fresh: bool = False,
    feature_batches=None,
    backbone_source=None,
):
    """The run's model, ready to train or restore.

    Args:
        config: the `ResolvedConfig`.
        info: the dataset's `DatasetInfo`.
        fresh: a new run: load the first weights and initialise the head.
        feature_batches: for `--head_init=class_mean`, a function returning
            `(images, labels)` batches of the training set preprocessed for
            evaluation.
        backbone_source: for `--init_from`, a function returning
            `(weights, path, source_config)` of the backbone of the run it
            starts from (`la_keras.runs.run_state.backbone_source`).
    """
    model = config.build_model(
        info.num_classes, info.image_shape, info.preprocessing
    )
    if not config.backbone:
        return model
    if fresh:
        _initialize(config, model, info, feature_batches, backbone_source)
    try:
        model = finetune.prepare(model, config.finetune, config.lora_rank)
    except ValueError as e:
        raise RunError(f"--finetune={config.finetune}: {e}") from e
    if fresh:
        facts = reporting.model_facts(config, model)["parameters"]
        logging.info(
            "--finetune=%s: %s of the model's %s parameters train.",
            config.finetune, f"{facts['trainable']:,}", f"{facts['total']:,}",
        )  # fmt: skip
    return model


def _initialize(config, model, info, feature_batches, backbone_source) -> None:
    if config.init_from:
        _copy_backbone(config, model, backbone_source())
    elif config.pretrained:
        try:
            registry.load_pretrained(
                model, config.model, config.pretrained, config.model_width
            )
        except (FileNotFoundError, ValueError, ImportError) as e:
            raise RunError(f"--pretrained={config.pretrained}: {e}") from e
        logging.info(
            "Loaded the %s weights %s.", config.model, config.pretrained
        )
    if config.head_init == "class_mean":
        finetune.class_mean_head(model, feature_batches(), info.num_classes)
        logging.info("Initialised the head from the class-mean features.")
    elif config.head_init == "text":
        _text_head(config, model, info)


def _text_head(config, model, info) -> None:
    """`--head_init=text`: the head from a CLIP preset's text features of
    the dataset's class names (`la_keras.models.text_head`)."""
    if not config.model.startswith(HUB_PREFIX):
        raise RunError(
            "--head_init=text starts the head from a CLIP preset's text "
            f"encoder: pass --model=hub:<CLIP preset>, not --model={config.model}."
        )
    from la_keras.models import text_head

    try:
        text_head.text_head(
            model, config.model[len(HUB_PREFIX) :], info.class_names
        )
    except (ValueError, ImportError) as e:
        raise RunError(f"--head_init=text on --dataset={info.name}: {e}") from e
    logging.info(
        "Initialised the head from the text features of %r for the %d "
        "class names.", text_head.TEMPLATE, info.num_classes,
    )  # fmt: skip


def _copy_backbone(config, model, source) -> None:
    """The backbone weights of the run in `config.init_from`: `source` is
    `(weights, path, source_config)` (`run_state.backbone_source`)."""
    weights, path, source_config = source
    target = finetune.backbone_of(model)
    shapes = [tuple(v.shape) for v in target.weights]
    if [w.shape for w in weights] != shapes:
        raise RunError(
            f"--init_from={config.init_from}: its backbone "
            f"(--model={source_config.model}, width "
            f"{source_config.model_width}) does not fit --model={config.model}"
            f" (width {config.model_width}): pass the same --model and "
            "--model_width."
        )
    target.set_weights(weights)
    logging.info("Started the backbone from %s.", path)
