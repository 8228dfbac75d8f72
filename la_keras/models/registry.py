"""The model registry: a name -> a builder, with the images it accepts.

Adding a backbone to la_keras (and to `launch.train --model`) is one
`register` call here. Every builder has the signature
`builder(num_classes, input_shape, weight_decay, classifier) -> keras.Model`
(logits; `classifier` is a head of `la_keras.models.heads.CLASSIFIERS`).
The classic CIFAR ResNets of any depth `6n+2` are one family entry,
`resnet<depth>`.

A pretrained backbone (`ModelSpec.pretrained`) also takes the keywords
`image_size` (what the backbone sees; default 224), `width` (a width
multiplier) and `preprocessing` (the recipe that normalised the dataset's
images), and has a `load_weights(model, weights, width)` that loads a
weights file or "imagenet" into a built model (`load_pretrained`). A model
with both forms (`resnet50`: from scratch at the dataset's size, or the
Keras Applications backbone) registers its pretrained form with
`register(spec, pretrained=True)`; `--pretrained` picks it. KerasHub
backbones are the family `hub:<preset name or directory>`
(`la_keras.models.hub`). `ModelSpec` and `HUB_PREFIX` live in
`la_keras.models.specs` (re-exported here).
"""

from __future__ import annotations

import functools
import re

import keras

from la_keras.models import applications
from la_keras.models import hub
from la_keras.models.cifar_resnet import cifar_resnet
from la_keras.models.cifar_resnet import official_resnet32
from la_keras.models.heads import check_classifier
from la_keras.models.resnet50 import resnet50
from la_keras.models.specs import HUB_PREFIX
from la_keras.models.specs import ModelSpec

_MODELS: dict[str, ModelSpec] = {}
# Pretrained forms of registered models trained from scratch by default.
_PRETRAINED: dict[str, ModelSpec] = {}
# resnet<depth>: the classic CIFAR ResNet of basic blocks, depth = 6n + 2.
_RESNET_FAMILY = re.compile(r"^resnet(\d+)$")


def register(spec: ModelSpec, pretrained: bool = False) -> ModelSpec:
    """Adds `spec` to the registry (a name may be registered once).

    With `pretrained=True`, `spec` is the pretrained form of the model of
    the same name, which `get(name, pretrained=True)` returns.
    """
    table = _PRETRAINED if pretrained else _MODELS
    if spec.name in table:
        raise ValueError(f"Model {spec.name!r} is already registered.")
    if pretrained and not spec.pretrained:
        raise ValueError(f"Model {spec.name!r} has no `load_weights`.")
    table[spec.name] = spec
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
    """True for a registered name, any `resnet<6n+2>` or `hub:<preset>`."""
    return (
        name in _MODELS
        or _family_depth(name) is not None
        or (name.startswith(HUB_PREFIX) and len(name) > len(HUB_PREFIX))
    )


def is_pretrained(name: str) -> bool:
    """Whether `name` has a pretrained form (a weights file can load)."""
    return (
        name in _PRETRAINED
        or name.startswith(HUB_PREFIX)
        or (name in _MODELS and _MODELS[name].pretrained)
    )


def describe() -> str:
    """One line per model, for help texts and errors."""
    lines = [f"{s.name}: {s.description}" for s in _MODELS.values()]
    lines.append(
        "resnet<6n+2> (e.g. resnet44, resnet110): classic CIFAR ResNet"
    )
    lines.append(
        "hub:<preset> (a KerasHub preset name or local preset directory): "
        "its vision backbone, pretrained (needs keras-hub)"
    )
    return "; ".join(lines)


def get(name: str, pretrained: bool = False) -> ModelSpec:
    """The `ModelSpec` of `name` (its pretrained form if `pretrained`);
    ValueError naming the known models."""
    if name.startswith(HUB_PREFIX):
        return hub.spec(name[len(HUB_PREFIX) :])
    if pretrained and name in _PRETRAINED:
        return _PRETRAINED[name]
    spec = _MODELS.get(name) or _family_spec(name)
    if pretrained and not spec.pretrained:
        raise ValueError(
            f"Model {name!r} has no pretrained form. Pretrained "
            f"backbones: {', '.join(pretrained_names())}, hub:<preset>."
        )
    return spec


def _family_spec(name: str) -> ModelSpec:
    """The `ModelSpec` of `resnet<6n+2>`; ValueError for an unknown name."""
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


def pretrained_names() -> list[str]:
    """The registered names with a pretrained form."""
    return [n for n in _MODELS if is_pretrained(n)]


def build(
    name: str,
    num_classes: int,
    input_shape,
    weight_decay: float,
    classifier: str = "dense",
    *,
    pretrained: bool = False,
    **backbone_options,
) -> keras.Model:
    """Builds model `name` for `num_classes` classes and `input_shape` images.

    `classifier` picks the head: "dense" (linear logits) or "normed" (the
    cosine classifier `NormedDense` of LDAM). With `pretrained`, the
    model's pretrained form, built with random weights (load them with
    `load_pretrained`); `backbone_options` (`image_size`, `width`,
    `preprocessing`) go to a pretrained backbone's builder.

    Raises:
        ValueError: unknown name, an image size the model does not accept
            (its `image_sizes`), or backbone options for a model without.
    """
    spec = get(name, pretrained)
    given = {k: v for k, v in backbone_options.items() if v is not None}
    if spec.pretrained:
        kwargs = given
    elif {k for k in given if k != "preprocessing"}:
        named = sorted(k for k in given if k != "preprocessing")
        raise ValueError(
            f"{' and '.join(named)} appl{'ies' if len(named) == 1 else 'y'} "
            "to pretrained backbones "
            f"({', '.join(pretrained_names())}, hub:<preset>), not {name!r}."
        )
    else:
        kwargs = {}
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
        num_classes, shape, weight_decay, check_classifier(classifier), **kwargs
    )


def load_pretrained(model, name: str, weights: str, width=None) -> None:
    """Loads `weights` (a weights file, "imagenet", or for `hub:` models
    the preset's own, "preset") into `model`, built by `build(name, ...,
    pretrained=True)`.

    Raises:
        FileNotFoundError: a weights file that does not exist.
        ValueError: a file that does not fit, cannot be read, or weights
            that cannot be downloaded.
    """
    get(name, pretrained=True).load_weights(model, weights, width)


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
        "ResNet-50 (ImageNet-size; with --pretrained, Keras's ImageNet "
        "ResNet-50)",
    )
)
for _name, _description in applications.DESCRIPTIONS.items():
    register(
        ModelSpec(
            _name,
            functools.partial(applications.application_model, _name),
            None,
            _description,
            functools.partial(applications.load_pretrained, _name),
        ),
        pretrained=_name in _MODELS,
    )
