"""What the model registry holds: `ModelSpec`, and the `hub:` prefix.

Shared by `la_keras.models.registry` (which registers and looks up specs)
and `la_keras.models.hub` (which makes the spec of a `hub:<preset>`), so
that neither imports the other for it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras

# The family of KerasHub backbones: `hub:<preset name or directory>`.
HUB_PREFIX = "hub:"


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """One entry of the registry.

    Args:
        name: the registered name (for a family, its pattern's example).
        builder: `builder(num_classes, input_shape, weight_decay,
            classifier)`.
        image_sizes: the `(H, W)` sizes the model accepts, or None for any
            (the ResNets here end in global average pooling).
        description: one line for `--help` and error messages.
        load_weights: for a pretrained backbone, `load_weights(model,
            weights, width)`; None for a model trained from scratch only.
    """

    name: str
    builder: Callable[..., keras.Model]
    image_sizes: tuple | None
    description: str
    load_weights: Callable | None = None

    @property
    def pretrained(self) -> bool:
        """Whether the model is a backbone with pretrained weights."""
        return self.load_weights is not None
