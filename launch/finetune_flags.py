"""The flags of pretrained backbones and fine-tuning, and LIFT's defaults.

With `--pretrained` (or a `hub:` model, pretrained by its preset), the
flags a user does not pass take the short fine-tuning recipe of LIFT (Shi
et al., ICML 2024, `shijxcs/LIFT`, its CIFAR / ImageNet-LT configs): SGD
with momentum 0.9, learning rate 0.01 decayed to 0 by a cosine, 10 epochs,
batch 128, weight decay 5e-4, and the logit-adjusted loss (`--mode=loss`;
LIFT's default `loss_type="LA"`). Every flag given overrides its default.
With `--sampler=class_balanced` the mode is baseline instead (plain
cross-entropy: `launch.balanced_sampling`).
"""

from __future__ import annotations

from absl import app
from absl import flags

from la_keras.models import finetune
from la_keras.models import registry

LIFT_DEFAULTS = {
    "epochs": 10,
    "base_learning_rate": 0.01,
    "momentum": 0.9,
    "nesterov": False,
    "train_batch_size": 128,
    "weight_decay": 5e-4,
    "mode": "loss",
}
SAMPLERS = ("shuffle", "class_balanced")
HEAD_INITS = ("random", "class_mean")
LR_SCHEDULES = ("auto", "step", "cosine")
# What a hub: model loads when --pretrained is not given: its preset's own.
PRESET_WEIGHTS = "preset"


def define_flags() -> None:
    flags.DEFINE_string(
        "pretrained",
        None,
        "Start from pretrained weights: PATH of a Keras weights file of the "
        "backbone without its top (.h5 as Keras Applications publish them, "
        "or .weights.h5), or imagenet to let Keras download the published "
        "weights. Sets LIFT's fine-tuning defaults for the flags not given "
        "(SGD momentum 0.9, lr 0.01 cosine to 0, 10 epochs, batch 128, "
        "weight decay 5e-4, --mode=loss; baseline with "
        "--sampler=class_balanced). hub: models load their preset's weights "
        "without it.",
    )
    flags.DEFINE_float(
        "model_width",
        None,
        "Width multiplier (alpha) of the MobileNets, e.g. 0.25.",
    )
    flags.DEFINE_enum(
        "finetune",
        "full",
        list(finetune.MODES),
        "What trains from the pretrained weights: full (every weight), "
        "linear (the head only; the backbone frozen, batch norm in "
        "inference mode), lora (Keras LoRA adapters of rank --lora_rank on "
        "the backbone's dense and convolution layers, and the head; merged "
        "into the kernels at export).",
    )
    flags.DEFINE_integer("lora_rank", 8, "Rank of the LoRA adapters.")
    flags.DEFINE_string(
        "init_from",
        None,
        "MODEL_DIR of an earlier launch.train run of the same backbone: start "
        "from its backbone weights (LoRA merged), with a new head "
        "(--head_init). With --finetune=linear --sampler=class_balanced, the "
        "classifier re-training of decoupled training (cRT), on plain "
        "cross-entropy.",
    )
    flags.DEFINE_enum(
        "sampler",
        "shuffle",
        list(SAMPLERS),
        "Training order: shuffle (each example once per epoch), or "
        "class_balanced (each draw picks a class uniformly, then one of its "
        "examples, as cRT's class-balanced sampling; the mode defaults to "
        "baseline, and a prior-correcting loss or post-hoc tau is refused: "
        "the batches already remove the prior).",
    )
    flags.DEFINE_enum(
        "head_init",
        "random",
        list(HEAD_INITS),
        "The head's initial weights: random, or class_mean (each class's "
        "mean pretrained feature, normalised, from one pass over the "
        "training set, as LIFT offers).",
    )
    flags.DEFINE_enum(
        "lr_schedule",
        "auto",
        list(LR_SCHEDULES),
        "step: the official warm-up and steps (--warmup_epochs, "
        "--lr_decay_epochs); cosine: cosine decay from --base_learning_rate "
        "to 0 over the run. auto: cosine with --pretrained / --init_from "
        "unless a step flag is given, else step.",
    )
    flags.register_validator(
        "lora_rank", lambda v: v >= 1, message="--lora_rank must be >= 1."
    )
    flags.register_validator(
        "model_width",
        lambda v: v is None or v > 0,
        message="--model_width must be > 0.",
    )


def given(flags_obj, name: str) -> bool:
    """Whether flag `name` was given (on the command line, in a flagfile,
    or set in code, as `flagsaver` does)."""
    try:
        return not flags_obj[name].using_default_value
    except (KeyError, TypeError, AttributeError):
        return False


def resolve(flags_obj) -> dict:
    """The fine-tuning fields of the flat config, and LIFT's defaults for the
    flags not given (`{flag: value}` to apply over the plain flags)."""
    model = flags_obj.model
    pretrained = flags_obj.pretrained
    hub = model.startswith(registry.HUB_PREFIX)
    if hub and pretrained is None and flags_obj.init_from is None:
        pretrained = PRESET_WEIGHTS
    started = pretrained is not None or flags_obj.init_from is not None
    try:
        spec = registry.get(model, pretrained=started)
    except (ValueError, ImportError) as e:
        raise app.UsageError(f"--model={model}: {e}") from e
    if pretrained is not None and not spec.pretrained:
        raise app.UsageError(
            f"--pretrained applies to pretrained backbones "
            f"({', '.join(registry.pretrained_names())}, hub:<preset>), not "
            f"--model={model}."
        )
    for name, default in (
        ("finetune", "full"),
        ("head_init", "random"),
        ("init_from", None),
        ("model_width", None),
    ):
        if getattr(flags_obj, name) != default and not spec.pretrained:
            raise app.UsageError(
                f"--{name} applies to pretrained backbones "
                f"({', '.join(registry.pretrained_names())}, hub:<preset>), "
                f"not --model={model}."
            )
    if flags_obj.finetune != "full" and not started:
        raise app.UsageError(
            f"--finetune={flags_obj.finetune} trains only part of the model: "
            "start it from weights with --pretrained or --init_from."
        )
    step_flags = [
        n
        for n in ("warmup_epochs", "lr_decay_epochs")
        if getattr(flags_obj, n) is not None
    ]
    schedule = flags_obj.lr_schedule
    if schedule == "auto":
        schedule = "cosine" if started and not step_flags else "step"
    elif schedule == "cosine" and step_flags:
        raise app.UsageError(
            f"--{' / --'.join(step_flags)} set a step schedule; "
            "--lr_schedule=cosine decays by a cosine. Pass one of them."
        )
    flat = {
        "pretrained": pretrained,
        "model_width": flags_obj.model_width,
        "finetune": flags_obj.finetune,
        "lora_rank": flags_obj.lora_rank,
        "init_from": flags_obj.init_from,
        "head_init": flags_obj.head_init,
        "sampler": flags_obj.sampler,
        "lr_schedule": schedule,
        "backbone": spec.pretrained,
    }
    defaults = {}
    if started:
        defaults = {
            name: value
            for name, value in LIFT_DEFAULTS.items()
            if not given(flags_obj, name)
        }
    return flat, defaults
