"""The recipe of pretrained backbones: LIFT's fine-tuning defaults.

With `--pretrained` (or a `hub:` model, pretrained by its preset), the
flags a user does not pass take the short fine-tuning recipe of LIFT (Shi
et al., ICML 2024, `shijxcs/LIFT`, its CIFAR / ImageNet-LT configs): SGD
with momentum 0.9, learning rate 0.01 decayed to 0 by a cosine, 10 epochs,
batch 128, weight decay 5e-4, and the logit-adjusted loss (`--mode=loss`;
LIFT's default `loss_type="LA"`). Every flag given overrides its default.
With `--sampler=class_balanced` the mode is baseline instead (plain
cross-entropy: `la_keras.runs.balanced_sampling`).
"""

from __future__ import annotations

from la_keras.models import registry
from la_keras.models.hub import PRESET_WEIGHTS
from la_keras.runs.errors import RunError

LIFT_DEFAULTS = {
    "epochs": 10,
    "base_learning_rate": 0.01,
    "momentum": 0.9,
    "nesterov": False,
    "train_batch_size": 128,
    "weight_decay": 5e-4,
    "mode": "loss",
}

# The defaults of a dataset for the fields not given: the `test` smoke set
# (46 training images) takes batches it can fill.
DATASET_DEFAULTS = {"test": {"train_batch_size": 16}}


def dataset_defaults(config) -> dict:
    """`DATASET_DEFAULTS` of `config.dataset` for the fields not given."""
    defaults = DATASET_DEFAULTS.get(config.dataset, {})
    return {k: v for k, v in defaults.items() if not config.is_given(k)}


def resolve(config) -> dict:
    """The fine-tuning fields of the flat config of `config` (a
    `RunConfig`), and LIFT's defaults for the fields not given
    (`{field: value}` to apply over the plain fields)."""
    model = config.model
    pretrained = config.pretrained
    hub = model.startswith(registry.HUB_PREFIX)
    if hub and pretrained is None and config.init_from is None:
        pretrained = PRESET_WEIGHTS
    started = pretrained is not None or config.init_from is not None
    try:
        spec = registry.get(model, pretrained=started)
    except (ValueError, ImportError) as e:
        raise RunError(f"--model={model}: {e}") from e
    if pretrained is not None and not spec.pretrained:
        raise RunError(
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
        if getattr(config, name) != default and not spec.pretrained:
            raise RunError(
                f"--{name} applies to pretrained backbones "
                f"({', '.join(registry.pretrained_names())}, hub:<preset>), "
                f"not --model={model}."
            )
    if config.head_init == "text" and not hub:
        raise RunError(
            "--head_init=text starts the head from a CLIP preset's text "
            f"encoder: pass --model=hub:<CLIP preset>, not --model={model}."
        )
    if config.finetune != "full" and not started:
        raise RunError(
            f"--finetune={config.finetune} trains only part of the model: "
            "start it from weights with --pretrained or --init_from."
        )
    step_flags = [
        n
        for n in ("warmup_epochs", "lr_decay_epochs")
        if getattr(config, n) is not None
    ]
    schedule = config.lr_schedule
    if schedule == "auto":
        schedule = "cosine" if started and not step_flags else "step"
    elif schedule == "cosine" and step_flags:
        raise RunError(
            f"--{' / --'.join(step_flags)} set a step schedule; "
            "--lr_schedule=cosine decays by a cosine. Pass one of them."
        )
    flat = {
        "pretrained": pretrained,
        "model_width": config.model_width,
        "finetune": config.finetune,
        "lora_rank": config.lora_rank,
        "init_from": config.init_from,
        "head_init": config.head_init,
        "sampler": config.sampler,
        "lr_schedule": schedule,
        "backbone": spec.pretrained,
    }
    defaults = {}
    if started:
        defaults = {
            name: value
            for name, value in LIFT_DEFAULTS.items()
            if not config.is_given(name)
        }
    return flat, defaults
