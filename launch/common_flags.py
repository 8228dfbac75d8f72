"""Flags of `launch.train` (and shared with evaluate / export).

The first block keeps the official release's flags (google-research
`logit_adjustment/main.py`) with their names, defaults and meaning; the rest
are new. Flags are declared by `define_flags()`, not at import, so tests and
other entry points can import this module freely.

Relative paths (`--data_home`, `--tb_log_dir`, `--model_dir`) are relative to
the working directory; the outputs default to folders inside `--model_dir`.
"""

from __future__ import annotations

import math

from absl import flags

from la_keras import distribute
from la_keras import losses as losses_lib
from la_keras.models import registry as model_registry
from la_keras.training.evaluation import DEFAULT_TAU_GRID
from launch import finetune_flags

MODES = ("baseline", "posthoc", "loss")


DTYPE_POLICIES = ("auto", "float32", "mixed_bfloat16")


def define_flags() -> None:
    """Declares the training flags (idempotent per process)."""
    if "train_batch_size" in flags.FLAGS:
        return
    # The official release's flags.
    flags.DEFINE_string(
        "dataset",
        "cifar10-lt",
        "Dataset to use: one of la_keras.datasets.names() or tfds:<name>. "
        "Mind the one-character difference: cifar10-lt / cifar100-lt (dash) "
        "read the official TFRecords from --data_home; cifar10_lt / "
        "cifar100_lt (underscore) derive the same long-tailed sets from TFDS "
        "cifar10 / cifar100. test is a tiny synthetic smoke set. "
        "prepared:<path> reads a file written by launch.prepare.",
    )
    flags.DEFINE_string(
        "data_home",
        "logit_adjustment/data",
        "Directory where data files are stored (the official TFRecords and "
        "<dataset>_base_probs.txt of cifar10-lt / cifar100-lt).",
    )
    flags.DEFINE_integer("train_batch_size", 128, "Train batch size.")
    flags.DEFINE_integer("test_batch_size", 100, "Test batch size.")
    flags.DEFINE_enum(
        "mode",
        "posthoc",
        list(MODES),
        "Logit-adjustment mode. See paper for details. baseline and posthoc "
        "train with cross-entropy, loss with the logit-adjusted loss; "
        "posthoc also evaluates logits - log(priors**tau + 1e-12).",
    )
    flags.DEFINE_float("tau", 1.0, "Tau parameter for logit adjustment.")
    flags.DEFINE_string(
        "tb_log_dir",
        None,
        "TensorBoard summaries, train/ and test/ (default: <model_dir>/log).",
    )
    # New flags.
    flags.DEFINE_string(
        "model_dir",
        "logit_adjustment/model",
        "Checkpoints, flags.txt / flags.json, metrics.json, the per-class plot "
        "and (by default) the SavedModel. Rerunning with the same model_dir "
        "resumes from its latest checkpoint.",
    )
    flags.DEFINE_string(
        "data_dir",
        None,
        "TFDS data_dir for the TFDS-backed datasets (default: TFDS_DATA_DIR "
        "or ~/tensorflow_datasets).",
    )
    flags.DEFINE_string(
        "export_dir",
        None,
        "SavedModel directory (default: <model_dir>/export).",
    )
    flags.DEFINE_integer(
        "seed", 0, "Seed for weights, data order and augmentation."
    )
    flags.DEFINE_string(
        "strategy",
        "auto",
        f"Distribution strategy: one of {', '.join(distribute.STRATEGIES)}.",
    )
    flags.DEFINE_string(
        "tpu", None, "TPU name or grpc:// address (--strategy=tpu)."
    )
    flags.DEFINE_string(
        "model",
        "official_resnet32",
        f"A model of la_keras.models.registry: {model_registry.describe()}.",
    )
    flags.DEFINE_enum(
        "classifier",
        "auto",
        ["auto", "dense", "normed"],
        "The model's head: dense (linear logits) or normed (a cosine "
        "classifier, la_keras.layers.NormedDense). auto: normed with "
        "--loss=ldam / ldam_drw (Cao et al. train LDAM's s=30 on cosines), "
        "dense otherwise.",
    )
    flags.DEFINE_string(
        "loss",
        None,
        "Training loss from la_keras.losses.names(); default from --mode: "
        "logit_adjusted for mode=loss, else crossentropy.",
    )
    _define_loss_flags()
    flags.DEFINE_integer(
        "epochs",
        None,
        "Training epochs (default: the official count for cifar10(-)lt / "
        "cifar100(-)lt, 2 for test, 200 for any other dataset).",
    )
    flags.DEFINE_bool(
        "extend",
        False,
        "Resume a run in --model_dir with a larger --epochs: allowed when "
        "the learning rate up to its old end stays the same (the same "
        "schedule flags, or more --lr_decay_epochs from the old end on).",
    )
    flags.DEFINE_float(
        "base_learning_rate", 0.1, "Learning rate after warm-up."
    )
    flags.DEFINE_float(
        "warmup_epochs",
        None,
        "Epochs of linear warm-up. Without this and --lr_decay_epochs: the "
        "official schedule of the dataset (cifar10(-)lt, cifar100(-)lt), "
        "else the official CIFAR-10-LT schedule scaled to --epochs.",
    )
    flags.DEFINE_list(
        "lr_decay_epochs",
        None,
        "Epochs where the learning rate drops (default: official).",
    )
    flags.DEFINE_list(
        "lr_decay_multipliers",
        None,
        "Multipliers of the base learning rate from each lr_decay_epochs entry.",
    )
    flags.DEFINE_float("momentum", 0.9, "SGD momentum.")
    flags.DEFINE_bool("nesterov", True, "Nesterov momentum.")
    flags.DEFINE_float("weight_decay", 1e-4, "L2 factor inside the model.")
    flags.DEFINE_float(
        "holdout_fraction",
        None,
        "Class-stratified fraction of the train split held out to choose "
        "tau (posthoc). Default 0: train on the whole long-tailed set, as "
        "the official release (imagenet_lt tunes on its own validation "
        "split). Opt in with e.g. 0.1 to tune tau on a holdout.",
    )
    flags.DEFINE_float("ratio", 100.0, "Imbalance ratio of TFDS-derived sets.")
    flags.DEFINE_enum("profile", "exp", ["exp", "step"], "Long-tail profile.")
    flags.DEFINE_integer(
        "crop_padding",
        2,
        "CIFAR recipe: pixels of zero padding a side before the random crop "
        "to the image size. 2 as the official release (36x36 for CIFAR); 4 "
        "is the LDAM / BBN convention; 0 flips only.",
    )
    flags.DEFINE_string(
        "image_size",
        None,
        "H or H,W pixels. A pretrained backbone (--pretrained, hub:) resizes "
        "its input to it inside the model (default 224, the size of the "
        "ImageNet weights; smaller is faster and less accurate), so export "
        "and serving take the dataset's images. --dataset=folder:<path>: "
        "every image (train and test) is read at this size; without it, all "
        "must share one size.",
    )
    flags.DEFINE_bool(
        "skip_bad_images",
        False,
        "--dataset=folder:<path>: train without the image files that cannot "
        "be read (empty, not an image, truncated, corrupt); they are counted "
        "and named in the log and metrics.json. Default: refuse them.",
    )
    flags.DEFINE_enum(
        "augment",
        "auto",
        ["auto", "cifar", "imagenet"],
        "--dataset=folder:<path>: the training augmentation. cifar: pad, "
        "random crop, flip, x/255-0.5; imagenet: random resized crop, flip, "
        "ImageNet mean/std. auto: cifar for images of at most 64 px a side, "
        "imagenet above.",
    )
    flags.DEFINE_integer(
        "shuffle_buffer",
        None,
        "Training shuffle buffer, reshuffled each epoch. Default: 10,000 "
        "records for the official TFRecords (as the official release), the "
        "whole split for the other CIFAR-recipe datasets, 4,096 for "
        "ImageNet-size images.",
    )
    flags.DEFINE_integer(
        "expected_train_examples",
        None,
        "cifar10-lt / cifar100-lt: records in the train TFRecord when it is "
        "not the official file (default: the official 12,406 / 10,847).",
    )
    flags.DEFINE_integer(
        "expected_test_examples",
        None,
        "cifar10-lt / cifar100-lt: records in the test TFRecord when it is "
        "not the official file (default: 10,000).",
    )
    flags.DEFINE_list(
        "tau_grid",
        [str(t) for t in DEFAULT_TAU_GRID],
        "Taus tried on the holdout for post-hoc adjustment.",
    )
    flags.DEFINE_bool(
        "jit_compile",
        None,
        "XLA-compile the train step. Default: on for GPU and TPU, off on CPU "
        "(XLA trains the ResNets about 40% slower on CPU: bench_train.py).",
    )
    flags.DEFINE_enum(
        "dtype_policy",
        "auto",
        list(DTYPE_POLICIES),
        "Keras dtype policy of the model: float32, or mixed_bfloat16 "
        "(bfloat16 compute, float32 weights; the head and the losses stay "
        "float32). auto: float32 on CPU; on GPU and TPU see "
        "launch/resolve.py `resolve_dtype_policy` (a resumed run keeps the "
        "policy it started with).",
    )
    flags.DEFINE_bool(
        "deterministic",
        False,
        "Bitwise-repeatable runs and resumes: "
        "tf.config.experimental.enable_op_determinism() on TensorFlow (slower "
        "input pipeline), XLA's deterministic GPU ops on JAX.",
    )
    flags.DEFINE_integer(
        "checkpoint_every_steps",
        0,
        "Also checkpoint every N steps (0: once per epoch only).",
    )
    flags.DEFINE_float(
        "checkpoint_every_seconds",
        60.0,
        "Checkpoint at an epoch's end only when this many seconds passed "
        "since the last checkpoint (0: every epoch). Epochs longer than "
        "that still checkpoint every epoch; short ones (half a second on an "
        "accelerator) do not pay a save each. A run always checkpoints at "
        "its end, before an evaluation and on SIGTERM (exit 75); a run "
        "killed harder loses at most this much training.",
    )
    flags.register_validator(
        "checkpoint_every_seconds",
        lambda v: math.isfinite(v) and v >= 0,
        message="--checkpoint_every_seconds must be a finite number of "
        "seconds >= 0.",
    )
    flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.")
    flags.DEFINE_float(
        "lock_timeout",
        300.0,
        "Seconds after which the model_dir lease of a run that stopped "
        "refreshing it (every lock_timeout/4 s) is stale and may be taken "
        "over from any host: how long a preempted job restarted elsewhere "
        "waits. Too short, and a live run whose refreshes are late loses it.",
    )
    flags.register_validator(
        "lock_timeout",
        lambda v: math.isfinite(v) and v > 0,
        message="--lock_timeout must be a finite number of seconds > 0.",
    )
    flags.DEFINE_integer(
        "steps_per_loop",
        100,
        "Train steps per call of the compiled loop (at most): how soon a "
        "SIGTERM (preemption) or a NaN loss is noticed.",
    )
    flags.DEFINE_enum(
        "jax_loop",
        "auto",
        ["auto", "python", "scan"],
        "KERAS_BACKEND=jax: how a call of --steps_per_loop steps runs: a "
        "Python loop over the jitted step, or one compiled lax.scan that "
        "also makes the batches. auto: scan on GPU and TPU, python on CPU "
        "(XLA runs convolutions inside compiled loops much slower on CPU, "
        "jax-ml/jax#12868; bench/bench_backends.py measures both).",
    )
    flags.DEFINE_integer(
        "eval_every_epochs",
        0,
        "Also evaluate on the test split every N epochs (0: only at the end, "
        "as the run's report does; an evaluation costs about an epoch's "
        "time, and a checkpoint, which short epochs would pay every epoch).",
    )
    flags.DEFINE_integer(
        "num_logical_cpus",
        0,
        "Split the CPU into N logical devices (mirrored runs on CPU).",
    )
    finetune_flags.define_flags()
    _register_validators()


# Loss hyperparameter flag -> (keyword of la_keras.losses.build, the losses
# that take it). `common.build_loss` passes each flag to those losses only.
LOSS_FLAGS = {
    "ldam_max_m": ("max_m", ("ldam", "ldam_drw")),
    "ldam_s": ("s", ("ldam", "ldam_drw")),
    "drw_start_epoch": ("drw_start_epoch", ("ldam_drw",)),
    "drw_beta": ("drw_beta", ("ldam_drw",)),
    "eql_lambda": ("lambda_", ("equalized",)),
    "eql_gamma": ("gamma", ("equalized",)),
    "cb_beta": ("beta", ("class_balanced", "class_balanced_focal")),
    "focal_gamma": ("gamma", ("class_balanced_focal", "focal")),
}


def _define_loss_flags() -> None:
    # None keeps the default of la_keras.losses.build for that loss.
    flags.DEFINE_float(
        "ldam_max_m",
        None,
        "--loss=ldam / ldam_drw: margin of the rarest class (default 0.5).",
    )
    flags.DEFINE_float(
        "ldam_s",
        None,
        "--loss=ldam / ldam_drw: logit scale s (default 30, Cao et al.'s "
        "value for the cosine classifier that --classifier=auto gives the "
        "LDAM losses; with --classifier=dense pick a small s, e.g. 1).",
    )
    flags.DEFINE_integer(
        "drw_start_epoch",
        None,
        "--loss=ldam_drw: 0-based epoch from which deferred re-weighting "
        "applies class-balanced weights (default 160).",
    )
    flags.DEFINE_float(
        "drw_beta",
        None,
        "--loss=ldam_drw: effective-number beta of the DRW weights "
        "(default 0.9999).",
    )
    flags.DEFINE_float(
        "eql_lambda",
        None,
        "--loss=equalized: tail frequency threshold (default 1/classes).",
    )
    flags.DEFINE_float(
        "eql_gamma",
        None,
        "--loss=equalized: probability of dropping a tail class from the "
        "softmax denominator (default 1).",
    )
    flags.DEFINE_float(
        "cb_beta",
        None,
        "--loss=class_balanced / class_balanced_focal: effective-number "
        "beta (default 0.9999).",
    )
    flags.DEFINE_float(
        "focal_gamma",
        None,
        "--loss=focal / class_balanced_focal: focusing gamma (default 2).",
    )


def _register_validators() -> None:
    flags.register_validator(
        "strategy",
        lambda v: v in distribute.STRATEGIES,
        message=f"--strategy must be one of: {', '.join(distribute.STRATEGIES)}.",
    )
    flags.register_validator(
        "model",
        model_registry.is_known,
        message=f"--model must be one of: {', '.join(model_registry.names())} "
        "(or any resnet<6n+2>, or hub:<preset>).",
    )
    flags.register_validator(
        "tau",
        lambda v: math.isfinite(v) and v >= 0,
        message="--tau must be a finite float >= 0 (0 disables it).",
    )
    for name in ("base_learning_rate", "momentum", "weight_decay"):
        flags.register_validator(
            name,
            lambda v: math.isfinite(v) and v >= 0,
            message=f"--{name} must be a finite float >= 0.",
        )
    flags.register_validator(
        "ratio",
        lambda v: math.isfinite(v) and v >= 1,
        message="--ratio must be a finite float >= 1.",
    )
    for name in ("warmup_epochs",):
        flags.register_validator(
            name,
            lambda v: v is None or (math.isfinite(v) and v >= 0),
            message=f"--{name} must be a finite float >= 0.",
        )
    flags.register_validator(
        "tau_grid",
        lambda v: all(_is_nonneg_float(t) for t in v) and len(v) > 0,
        message="--tau_grid must be a non-empty list of finite floats >= 0.",
    )
    for name in ("train_batch_size", "test_batch_size", "steps_per_loop"):
        flags.register_validator(
            name, lambda v: v >= 1, message=f"--{name} must be >= 1."
        )
    for name in (
        "shuffle_buffer",
        "expected_train_examples",
        "expected_test_examples",
    ):
        flags.register_validator(
            name,
            lambda v: v is None or v >= 1,
            message=f"--{name} must be >= 1.",
        )
    flags.register_validator(
        "crop_padding", lambda v: v >= 0, message="--crop_padding must be >= 0."
    )
    flags.register_validator(
        "epochs",
        lambda v: v is None or v >= 1,
        message="--epochs must be >= 1.",
    )
    flags.register_validator(
        "holdout_fraction",
        lambda v: v is None or 0.0 <= v < 1.0,
        message="--holdout_fraction must be in [0, 1).",
    )
    flags.register_validator("image_size", _check_image_size)
    flags.register_validator("loss", _check_loss)
    flags.register_validator("dataset", _check_dataset)


def _check_image_size(value) -> bool:
    from la_keras.datasets import folder

    try:
        folder.check_image_size(value)
    except ValueError:
        raise flags.ValidationError(
            f"--image_size={value!r}: expected H or H,W, positive integers "
            "(e.g. 64 or 96,128)."
        ) from None
    return True


def _check_loss(value) -> bool:
    # The catalogue is read at validation time: losses registered after
    # define_flags() are accepted.
    if value is not None and value not in losses_lib.names():
        raise flags.ValidationError(
            f"Unknown --loss={value!r}. Known losses: "
            f"{', '.join(losses_lib.names())}."
        )
    return True


def _check_dataset(value) -> bool:
    from la_keras import datasets

    prefixes = ("tfds:", "prepared:", "folder:")
    if value.startswith(prefixes[1:]) and len(value.split(":", 1)[1]) > 0:
        return True  # read without TensorFlow (numpy, Pillow)
    try:
        known = datasets.names()
    except ImportError:
        # No TensorFlow: the default --dataset must still parse; reading a
        # dataset other than prepared: then fails with the reason
        # (`launch.data_config`).
        return True
    if value in known or any(
        value.startswith(p) and len(value) > len(p) for p in prefixes
    ):
        return True
    raise flags.ValidationError(
        f"Unknown --dataset={value!r}. Known datasets: {', '.join(known)} "
        "(prepared:<path> is a file of launch.prepare, folder:<path> a "
        "folder of images per class)."
    )


def _is_nonneg_float(text) -> bool:
    try:
        value = float(text)
    except ValueError:
        return False
    return math.isfinite(value) and value >= 0
