"""`ModelOptions`: the network: architecture, head, weights it starts from, dtype."""

from __future__ import annotations

import dataclasses

from la_keras.runs.parts import checks
from la_keras.runs.parts.option import NONNEGATIVE
from la_keras.runs.parts.option import at_least
from la_keras.runs.parts.option import option


@dataclasses.dataclass(frozen=True)
class ModelOptions:
    """The network: architecture, head, weights it starts from, dtype."""

    model: str = option(
        "official_resnet32",
        "A model of la_keras.models.registry: ",
        more=checks.describe_models,
        check=checks.model,
    )
    classifier: str = option(
        "auto",
        (
            "The model's head: dense (linear logits), "
            "normed (a cosine classifier, la_keras.layers.NormedDense, whose "
            "logits are the cosines) or cosine (the same, its cosines times "
            "--cosine_scale: LIFT's classifier, trained by the loss itself; "
            "no bias). auto: normed with --loss=ldam / ldam_drw (Cao et al. "
            "train LDAM's s=30 on cosines), dense otherwise."
        ),
        choices=("auto", "dense", "normed", "cosine"),
    )
    cosine_scale: float = option(
        25.0,
        "--classifier=cosine: the factor of its cosines (LIFT's 25).",
        check=at_least(0, finite=True, strict=True),
    )
    weight_decay: float = option(
        0.0001,
        "L2 factor inside the model.",
        check=NONNEGATIVE,
    )
    dtype_policy: str = option(
        "auto",
        (
            "Keras dtype policy of the model: "
            "float32, or mixed_bfloat16 (bfloat16 compute, float32 weights; the "
            "head and the losses stay float32). auto: float32 on CPU; on GPU "
            "and TPU see la_keras/runs/resolve.py `resolve_dtype_policy` (a "
            "resumed run keeps the policy it started with)."
        ),
        choices=("auto", "float32", "mixed_bfloat16"),
    )
    pretrained: str | None = option(
        None,
        (
            "Start from pretrained weights: PATH of a Keras weights file of the "
            "backbone without its top (.h5 as Keras Applications publish them, "
            "or .weights.h5), or imagenet to let Keras download the published "
            "weights. Sets LIFT's fine-tuning defaults for the flags not given "
            "(SGD momentum 0.9, lr 0.01 cosine to 0, 10 epochs, batch 128, "
            "weight decay 5e-4, --mode=loss; baseline with "
            "--sampler=class_balanced). hub: models load their preset's weights "
            "without it."
        ),
    )
    model_width: float | None = option(
        None,
        "Width multiplier (alpha) of the MobileNets, e.g. 0.25.",
        check=at_least(0, optional=True, strict=True),
    )
