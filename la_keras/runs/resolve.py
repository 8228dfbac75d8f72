"""A `RunConfig` -> the flat resolved configuration, resolved once, in order.

First a recipe's defaults for the fields not given (LIFT's, `recipes`),
then the dataset's (`recipes.DATASET_DEFAULTS`), then the defaults that
depend on other fields: the loss of the mode, the head, the holdout, the
schedule of the dataset, XLA and the dtype by platform.
`la_keras.runs.resolved.ResolvedConfig.resolve` types it.
"""

from __future__ import annotations

import os

from absl import logging

from la_keras import schedules
from la_keras.datasets import prepared
from la_keras.runs import balanced_sampling
from la_keras.runs import recipes
from la_keras.runs.errors import RunError
from la_keras.runs.parts.loss import LOSS_OPTIONS

# Flags copied as they are into the flat config.
_PLAIN_FLAGS = (
    "dataset", "data_home", "data_dir", "ratio", "profile", "seed",
    "train_batch_size", "test_batch_size", "holdout_fraction", "mode", "tau",
    "tb_log_dir", "model_dir", "export_dir", "strategy", "tpu", "model",
    "loss", "base_learning_rate", "momentum", "nesterov", "weight_decay",
    "deterministic", "checkpoint_every_steps", "checkpoint_every_seconds",
    "keep_checkpoints",
    "steps_per_loop", "eval_every_epochs", "num_logical_cpus",
    "crop_padding", "shuffle_buffer", "expected_train_examples",
    "expected_test_examples", "jax_loop", "lock_timeout", "extend",
    "skip_bad_images", "augment", "cosine_scale",
)  # fmt: skip

# The outputs that lie in a folder of --model_dir unless given.
OUTPUT_FOLDERS = {"tb_log_dir": "log", "export_dir": "export"}

# Losses that add tau * log(prior) (or log(counts)) to the logits in
# training: their logits are already adjusted, so only --mode=loss fits them
# (focal, class_balanced, ldam, equalized re-weight or add margins instead).
PRIOR_LOSSES = ("logit_adjusted", "balanced_softmax")


def resolve_options(config) -> dict:
    """The flat config of `config` (a `RunConfig`), resolved top to bottom:
    a recipe's defaults (LIFT's, `recipes`) and the dataset's
    (`recipes.DATASET_DEFAULTS`) for the fields not given, then the
    defaults that depend on other fields (loss, head, schedule, XLA)."""
    flat = {name: getattr(config, name) for name in _PLAIN_FLAGS}
    tuning, lift = recipes.resolve(config)
    flat.update(tuning)
    mode = balanced_sampling.default_mode(config, flat["sampler"])
    if mode:
        lift.pop("mode", None)
        flat["mode"] = mode
    flat.update({k: v for k, v in lift.items() if k != "epochs"})
    flat.update(recipes.dataset_defaults(config))
    if lift:
        logging.info(
            "--pretrained: LIFT's fine-tuning defaults for the flags not "
            "given: %s.", ", ".join(f"--{k}={v}" for k, v in lift.items()),
        )  # fmt: skip
    flat.update({k: getattr(config, k) for k in LOSS_OPTIONS})
    balanced_sampling.check(
        flat, flat["loss"] or default_loss(flat["mode"]), config.tau_grid
    )
    if flat["loss"] is None:
        flat["loss"] = default_loss(flat["mode"])
    elif flat["mode"] != "loss" and flat["loss"] in PRIOR_LOSSES:
        raise RunError(
            f"--loss={flat['loss']} already adjusts the logits by the class "
            f"priors, and --mode={flat['mode']} would adjust them again after "
            "training (post-hoc rows, served tau); use --mode=loss."
        )
    elif flat["mode"] != "loss" and flat["loss"] != "crossentropy":
        logging.warning(
            "--mode=%s trains with --loss=%s; the official %s mode trains with "
            "plain cross-entropy.",
            flat["mode"], flat["loss"], flat["mode"],
        )  # fmt: skip
    flat["classifier"] = resolve_classifier(config.classifier, flat["loss"])
    size = _resolve_image_size(config.image_size)
    # --image_size: what a pretrained backbone sees (it resizes inside the
    # model), and the size a folder's images are read at; a folder read at
    # that size is not resized again.
    flat["model_image_size"] = size if flat["backbone"] else None
    folder = flat["dataset"].startswith("folder:")
    flat["image_size"] = size if folder or not flat["backbone"] else None
    if flat["holdout_fraction"] is None:
        flat["holdout_fraction"] = 0.0
    flat["tau_grid"] = [float(t) for t in config.tau_grid]
    flat.update(_resolve_schedule(config, lift.get("epochs")))
    flat["jit_compile"] = _resolve_jit(config.jit_compile, flat["strategy"])
    flat["dtype_policy"] = resolve_dtype_policy(
        config.dtype_policy, flat["strategy"], flat["model_dir"]
    )
    for key, folder in OUTPUT_FOLDERS.items():
        if not flat[key]:
            flat[key] = os.path.join(flat["model_dir"], folder)
    return flat


def _resolve_image_size(value) -> list | None:
    """--image_size as `[H, W]` (JSON), or None."""
    from la_keras.datasets import folder

    size = folder.check_image_size(value)
    return None if size is None else list(size)


# The losses whose scale assumes cosine logits (Cao et al.'s LDAM code
# switches its NormedLinear head on with them).
COSINE_LOSSES = ("ldam", "ldam_drw")


def resolve_classifier(classifier: str, loss: str) -> str:
    """--classifier, auto resolved: "normed" for the LDAM losses, else
    "dense"."""
    if classifier != "auto":
        return classifier
    return "normed" if loss in COSINE_LOSSES else "dense"


def _resolve_schedule(config, default_epochs=None) -> dict:
    given = (
        config.warmup_epochs is not None or config.lr_decay_epochs is not None
    )
    dataset = _schedule_dataset(config.dataset)
    if not given:
        epochs = config.epochs if default_epochs is None else default_epochs
        default = schedules.default_schedule(dataset, epochs)
        return {
            "epochs": default["epochs"],
            "schedule": [list(p) for p in default["schedule"]],
        }
    try:
        schedule = schedules.parse_schedule(
            config.warmup_epochs or 0.0,
            config.lr_decay_epochs or [],
            config.lr_decay_multipliers or [],
        )
    except ValueError as e:
        raise RunError(str(e)) from e
    epochs = config.epochs if default_epochs is None else default_epochs
    if epochs is None:
        epochs = schedules.default_schedule(dataset)["epochs"]
    return {"epochs": epochs, "schedule": [list(p) for p in schedule]}


def _schedule_dataset(dataset: str) -> str:
    """The dataset whose default schedule applies: a prepared file's source."""
    if not dataset.startswith(prepared.PREFIX):
        return dataset
    try:
        metadata = prepared.read_metadata(dataset[len(prepared.PREFIX) :])
    except (ValueError, FileNotFoundError) as e:
        raise RunError(f"--dataset={dataset}: {e}") from e
    return metadata["source"].get("dataset", dataset)


def _resolve_jit(value: bool | None, strategy: str) -> bool:
    """--jit_compile; unset: on for GPU and TPU, off on CPU; on for JAX.

    Measured with `bench/bench_train.py`: XLA-compiled TensorFlow steps
    train the ResNets about 40% slower on a 2-core CPU, and faster on
    accelerators. On Keras's JAX backend the step is always `jax.jit`-ed
    unless --jit_compile=false asks for an eager step (for debugging).
    """
    if value is not None:
        return bool(value)
    import keras

    if strategy == "tpu" or keras.backend.backend() == "jax":
        return True
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


# What `--dtype_policy=auto` takes on a GPU or TPU: see RESULTS.md, "float32
# or bfloat16". On CPU it is always float32 (bfloat16 trained slower there).
ACCELERATOR_DTYPE_POLICY = "float32"


def resolve_dtype_policy(value: str, strategy: str, model_dir: str) -> str:
    """--dtype_policy, auto resolved.

    A run that already wrote its flags.json keeps the policy it resolved
    then (so a run moved from a GPU to a CPU resumes as it started);
    otherwise auto is float32 on CPU and `ACCELERATOR_DTYPE_POLICY` on GPU
    and TPU.
    """
    if value != "auto":
        return value
    from la_keras.runs import outputs

    try:
        previous = outputs.read_json(os.path.join(model_dir, "flags.json"))
    except (FileNotFoundError, ValueError, OSError):
        previous = {}
    if isinstance(previous, dict) and previous.get("dtype_policy"):
        return previous["dtype_policy"]
    if ACCELERATOR_DTYPE_POLICY == "float32":
        # No need to ask the backend; asking JAX starts its devices, which
        # must wait for `keras.distribution.initialize` and --deterministic.
        return "float32"
    return ACCELERATOR_DTYPE_POLICY if _on_accelerator(strategy) else "float32"


def _on_accelerator(strategy: str) -> bool:
    """Whether the backend trains on a GPU or TPU."""
    import keras

    if strategy == "tpu":
        return True
    if keras.backend.backend() == "jax":
        # The platforms JAX will use, without starting its devices (which
        # must wait for `keras.distribution.initialize`): JAX_PLATFORMS, or
        # whether a GPU or TPU plugin is installed.
        import importlib.util

        platforms = os.environ.get("JAX_PLATFORMS", "")
        if platforms:
            return platforms.split(",")[0] in ("cuda", "gpu", "rocm", "tpu")
        return any(
            importlib.util.find_spec(name) is not None
            for name in ("jax_cuda12_plugin", "jax_cuda13_plugin", "libtpu")
        )
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def default_loss(mode: str) -> str:
    """The official loss of `mode`: logit_adjusted for loss, else CE."""
    return "logit_adjusted" if mode == "loss" else "crossentropy"
