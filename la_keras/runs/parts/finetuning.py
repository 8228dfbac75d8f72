"""`FinetuningOptions`: what trains from pretrained weights, and the new head's start."""

from __future__ import annotations

import dataclasses

from la_keras.runs.parts.option import POSITIVE
from la_keras.runs.parts.option import option


@dataclasses.dataclass(frozen=True)
class FinetuningOptions:
    """What trains from pretrained weights, and the new head's start."""

    finetune: str = option(
        "full",
        (
            "What trains from the pretrained weights: full "
            "(every weight), linear (the head only; the backbone frozen, batch "
            "norm in inference mode), lora (Keras LoRA adapters of rank "
            "--lora_rank on the backbone's dense and convolution layers, and "
            "the head; merged into the kernels at export), bn (the "
            "normalisation layers: batch norm's scales, offsets and statistics, "
            "or layer norm's; and the head), bitfit (as bn, and the backbone's "
            "biases), lora_bn (lora, and the normalisation layers as in bn), ssf "
            "(a per-channel scale and shift after each normalisation layer, "
            "batch norm frozen in inference mode, and the head; merged into "
            "the normalisation layers at export), adaptformer (LIFT's "
            "AdaptFormer modules beside each transformer block's MLP of a hub: "
            "ViT, CLIP, SigLIP or DINOv2, and the head; kept in the served "
            "model)."
        ),
        choices=(
            "full",
            "linear",
            "lora",
            "bn",
            "bitfit",
            "lora_bn",
            "ssf",
            "adaptformer",
        ),  # fmt: skip
    )
    lora_rank: int = option(8, "Rank of the LoRA adapters.", check=POSITIVE)
    init_from: str | None = option(
        None,
        (
            "MODEL_DIR of an earlier launch.train run of the same backbone: "
            "start from its backbone weights (LoRA merged), with a new head "
            "(--head_init). With --finetune=linear --sampler=class_balanced, "
            "the classifier re-training of decoupled training (cRT), on plain "
            "cross-entropy."
        ),
    )
    head_init: str = option(
        "random",
        (
            "The head's initial weights: random, "
            "class_mean (each class's mean pretrained feature, normalised, from "
            "one pass over the training set, as LIFT offers), or text (for "
            "--model=hub:<CLIP preset>: the text encoder's features of 'a "
            "photo of a {class name}.' for the dataset's class names, as LIFT "
            "starts CLIP; the preset needs its tokenizer)."
        ),
        choices=("random", "class_mean", "text"),
    )
