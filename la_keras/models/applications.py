"""Keras Applications backbones, pretrained or not, with a logits head.

A pretrained model is `BackboneInput` (the dataset's normalised images back
to pixels, gray to RGB, resized to `image_size`, scaled as the backbone's
ImageNet weights expect), the backbone as a nested model named `backbone`
(global average pooling, no top), and the head `logits`. Fine-tuning
(`la_keras.models.finetune`) freezes or adapts `backbone`; weights files
load into it (`la_keras.models.pretrained_weights`).
"""

from __future__ import annotations

import dataclasses

import keras

from la_keras.datasets.normalization import pixel_affine
from la_keras.layers.backbone_input import BackboneInput
from la_keras.models.heads import add_weight_decay
from la_keras.models.heads import logits_layer
from la_keras.models.pretrained_weights import load_backbone_weights

# The size the ImageNet backbones were trained at.
DEFAULT_IMAGE_SIZE = 224
# The nested backbone model's name inside every pretrained model.
BACKBONE = "backbone"


@dataclasses.dataclass(frozen=True)
class Application:
    """A Keras Applications backbone.

    Args:
        constructor: its function in `keras.applications`.
        mode: how its ImageNet weights scale `[0, 255]` RGB (see
            `la_keras.layers.backbone_input.MODES`).
        widths: the width multipliers (`alpha`) with published weights, or
            None for a backbone without one.
        default_width: the width when none is given.
        options: more keyword arguments of the constructor.
    """

    constructor: str
    mode: str
    widths: tuple | None = None
    default_width: float = 1.0
    options: tuple = ()


APPLICATIONS = {
    "mobilenet": Application("MobileNet", "tf", (0.25, 0.5, 0.75, 1.0)),
    "mobilenet_v2": Application(
        "MobileNetV2", "tf", (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
    ),
    "mobilenet_v3_small": Application(
        "MobileNetV3Small",
        "raw",  # its own Rescaling layer takes [0, 255]
        (0.75, 1.0),
        options=(("include_preprocessing", True),),
    ),
    "efficientnet_b0": Application("EfficientNetB0", "raw"),
    "resnet50": Application("ResNet50", "caffe"),
}


DESCRIPTIONS = {
    "mobilenet": "MobileNet v1, Keras Applications (--model_width: alpha "
    "0.25 / 0.5 / 0.75 / 1)",
    "mobilenet_v2": "MobileNet v2, Keras Applications (--model_width: alpha)",
    "mobilenet_v3_small": "MobileNet v3 small, Keras Applications "
    "(--model_width: alpha 0.75 / 1)",
    "efficientnet_b0": "EfficientNet-B0, Keras Applications",
    "resnet50": "ResNet-50, Keras Applications",
}


def check_width(name: str, width) -> float | None:
    """The width multiplier of backbone `name` (its default if None)."""
    app = APPLICATIONS[name]
    if app.widths is None:
        if width is not None:
            raise ValueError(
                f"Invalid value for argument `width`: {name} has no width "
                f"multiplier; leave it unset. Received: width={width!r}"
            )
        return None
    try:
        width = app.default_width if width is None else float(width)
    except (TypeError, ValueError):  # "wide": refused below
        pass
    if width not in app.widths:
        raise ValueError(
            f"Invalid value for argument `width`. Expected one of "
            f"{', '.join(str(w) for w in app.widths)} for {name} (the widths "
            f"with ImageNet weights). Received: width={width!r}"
        )
    return width


def check_image_size(image_size) -> tuple[int, int]:
    """`(H, W)` of a backbone's input: `DEFAULT_IMAGE_SIZE` if None."""
    if image_size is None:
        return (DEFAULT_IMAGE_SIZE, DEFAULT_IMAGE_SIZE)
    try:
        size = tuple(int(v) for v in image_size)
    except (TypeError, ValueError):  # 64, "64", ("a", "b")
        size = ()
    if len(size) != 2 or min(size) < 32:
        raise ValueError(
            "Invalid value for argument `image_size`. Expected (height, "
            "width), each at least 32 (the backbones downsample 32 times). "
            f"Received: image_size={image_size!r}"
        )
    return size


def application_model(
    name: str,
    num_classes: int,
    input_shape,
    weight_decay: float = 5e-4,
    classifier: str = "dense",
    *,
    weights: str | None = None,
    image_size=None,
    width=None,
    preprocessing: str = "cifar",
) -> keras.Model:
    """Keras Applications backbone `name` with a logits head.

    Args:
        name: a key of `APPLICATIONS`.
        num_classes: number of output logits.
        input_shape: `(H, W, C)` of the dataset's normalised images.
        weight_decay: L2 factor on every convolution and dense kernel.
        classifier: the head, "dense" or "normed".
        weights: None (random) or "imagenet" (Keras downloads the published
            weights); a weights file is loaded afterwards with
            `la_keras.models.pretrained_weights.load_backbone_weights`.
        image_size: `(H, W)` the backbone sees (default 224x224).
        width: the width multiplier (`alpha`) of the MobileNets.
        preprocessing: the recipe that normalised the inputs, "cifar" or
            "imagenet" (`DatasetInfo.preprocessing`).
    """
    if name not in APPLICATIONS:
        raise ValueError(
            f"Invalid value for argument `name`. Expected one of "
            f"{', '.join(APPLICATIONS)}. Received: name={name!r}"
        )
    if int(num_classes) < 1:
        raise ValueError(
            "Invalid value for argument `num_classes`. Expected an integer "
            f">= 1. Received: num_classes={num_classes}"
        )
    app = APPLICATIONS[name]
    size = check_image_size(image_size)
    width = check_width(name, width)
    if weights not in (None, "imagenet"):
        raise ValueError(
            "Invalid value for argument `weights`. Expected None or "
            "'imagenet' (load a file with load_backbone_weights). Received: "
            f"weights={weights!r}"
        )
    backbone = _backbone(name, size, width, weights)
    return assemble(
        name, input_shape, preprocessing, size, app.mode, backbone,
        num_classes, classifier, weight_decay,
    )  # fmt: skip


def assemble(
    name, input_shape, preprocessing, size, mode, backbone, num_classes,
    classifier, weight_decay, scaling=(),
) -> keras.Model:  # fmt: skip
    """The pretrained model around `backbone`: `BackboneInput` (the
    dataset's images to `size` pixels scaled by `mode`), then the `scaling`
    layers, `backbone` (pooled features), the head `logits`, weight decay.
    """
    shape = tuple(int(d) for d in input_shape)
    scale, offset = pixel_affine(preprocessing, shape[-1])
    inputs = keras.Input(shape=shape, name="images")
    x = BackboneInput(scale, offset, size, mode, name="backbone_input")(inputs)
    for layer in scaling:
        x = layer(x)
    features = backbone(x)
    outputs = logits_layer(num_classes, classifier)(features)
    model = keras.Model(inputs, outputs, name=name)
    add_weight_decay(model, weight_decay)
    return model


def _backbone(name, size, width, weights):
    app = APPLICATIONS[name]
    kwargs = dict(app.options)
    if width is not None:
        kwargs["alpha"] = width
    return getattr(keras.applications, app.constructor)(
        input_shape=(*size, 3),
        include_top=False,
        weights=weights,
        pooling="avg",
        name=BACKBONE,
        **kwargs,
    )


def load_pretrained(name: str, model, weights: str, width=None) -> None:
    """Loads `weights` into the backbone of `model` (built by
    `application_model(name, ...)`): a weights file, or "imagenet" for the
    weights Keras publishes (downloaded once into `~/.keras/models`).

    Raises:
        FileNotFoundError, ValueError: see
            `pretrained_weights.load_backbone_weights`; ValueError also when
            the ImageNet weights cannot be downloaded.
    """
    backbone = model.get_layer(BACKBONE)
    width = check_width(name, width)
    what = f"--model={name}" + (
        "" if width is None else f" --model_width={width}"
    )
    if weights != "imagenet":
        load_backbone_weights(backbone, weights, what)
        return
    size = tuple(int(d) for d in backbone.input_shape[1:3])
    try:
        published = _backbone(name, size, width, "imagenet")
    except Exception as e:  # no internet, a proxy, a full disk, ...
        raise ValueError(
            f"The ImageNet weights of {what} cannot be downloaded ({e}). "
            "Without internet, pass --pretrained=PATH, the weights file "
            "(no top) copied from a machine that has it (~/.keras/models)."
        ) from None
    backbone.set_weights(published.get_weights())
