"""The model registry: a name -> a builder, with the images it accepts.

Adding a backbone to la_keras (and to `launch.train --model`) is one
`register` call here. Every builder has the signature
`builder(num_classes, input_shape, weight_decay, classifier) -> keras.Model`
(logits; `classifier` is a head of `la_keras.models.heads.CLASSIFIERS`).
The classic CIFAR ResNets of any depth `6n+2` are one family entry,
`resnet<depth>`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

import keras

from la_keras.models.cifar_resnet import cifar_resnet
from la_keras.models.cifar_resnet import official_resnet32
from la_keras.models.heads import check_classifier
from la_keras.models.resnet50 import resnet50


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
    """

    name: str
    builder: Callable[..., keras.Model]
    image_sizes: tuple | None
    description: str


_MODELS: dict[str, ModelSpec] = {}
# resnet<depth>: the classic CIFAR ResNet of basic blocks, depth = 6n + 2.
_RESNET_FAMILY = re.compile(r"^resnet(\d+)$")


def register(spec: ModelSpec) -> ModelSpec:
    """Adds `spec` to the registry (a name may be registered once)."""
    if spec.name in _MODELS:
        raise ValueError(f"Model {spec.name!r} is already registered.")
    _MODELS[spec.name] = spec
    return spec


def names() -> list[str]:
    """The registered names, e.g. for a flag's help."""
    return list(_MODELS)


def _family_depth(name: str) -> int | None:
    match = _RESNET_FAMILY.match(name)
    if match is None or name in _MODELS:
        return None
    depth = int(match.group(1))
    return depth if depth >= 8 and (depth - 2) % 6 == 0 else None


def is_known(name: str) -> bool:
    """True for a registered name or any `resnet<6n+2>`."""
    return name in _MODELS or _family_depth(name) is not None


def describe() -> str:
    """One line per model, for help texts and errors."""
    lines = [f"{s.name}: {s.description}" for s in _MODELS.values()]
    lines.append(
        "resnet<6n+2> (e.g. resnet44, resnet110): classic CIFAR ResNet"
    )
    return "; ".join(lines)


def get(name: str) -> ModelSpec:
    """The `ModelSpec` of `name`; ValueError naming the known models."""
    if name in _MODELS:
        return _MODELS[name]
    depth = _family_depth(name)
    if depth is None:
        raise ValueError(
            f"Invalid value for argument `name`. Expected one of "
            f"{', '.join(names())} or resnet<6n+2> (any depth 6n+2 >= 8). "
            f"Received: name={name!r}"
        )
    return ModelSpec(
        name,
        lambda c, s, w, h: cifar_resnet(depth, c, s, w, classifier=h),
        None,
        f"classic CIFAR ResNet-{depth}",
    )


def build(
    name: str,
    num_classes: int,
    input_shape,
    weight_decay: float,
    classifier: str = "dense",
) -> keras.Model:
    """Builds model `name` for `num_classes` classes and `input_shape` images.

    `classifier` picks the head: "dense" (linear logits) or "normed" (the
    cosine classifier `NormedDense` of LDAM).

    Raises:
        ValueError: unknown name, or an image size the model does not
            accept (its `image_sizes`).
    """
    spec = get(name)
    shape = tuple(int(d) for d in input_shape)
    if (
        spec.image_sizes is not None
        and tuple(shape[:2]) not in spec.image_sizes
    ):
        raise ValueError(
            f"Model {name!r} takes {' or '.join(f'{h}x{w}' for h, w in spec.image_sizes)} "
            f"images, but the dataset's are {shape[0]}x{shape[1]}. Choose a model "
            f"for this image size ({describe()})."
        )
    return spec.builder(
        num_classes, shape, weight_decay, check_classifier(classifier)
    )


register(
    ModelSpec(
        "official_resnet32",
        lambda c, s, w, h: official_resnet32(c, s, w, classifier=h),
        None,
        "the official release's ResNet-32 (CIFAR)",
    )
)
for _depth in (8, 20, 32, 56):
    register(
        ModelSpec(
            f"resnet{_depth}",
            lambda c, s, w, h, d=_depth: cifar_resnet(d, c, s, w, classifier=h),
            None,
            f"classic CIFAR ResNet-{_depth} (basic blocks)",
        )
    )
register(
    ModelSpec(
        "resnet50",
        lambda c, s, w, h: resnet50(c, s, w, classifier=h),
        None,
        "ResNet-50 (ImageNet-size)",
    )
)
