"""KerasHub vision backbones as pretrained registry models (`hub:<preset>`).

`spec(preset)` is the registry entry of `--model=hub:<preset>`: a KerasHub
preset name (downloaded by KerasHub where there is internet) or a local
preset directory (`backbone.save_to_preset(dir)` and the image converter's
`save_to_preset(dir)`). The model has the structure of
`la_keras.models.applications`:

```
images (the dataset's normalised images)
-> BackboneInput (back to [0, 255] RGB, resized to the backbone's size)
-> image_converter (the preset's own scale and offset, a Rescaling layer)
-> backbone (a nested model: the preset's backbone, or the vision tower of
   a CLIP / SigLIP preset, then its pooling: [batch, D] features)
-> logits (the head)
```

Supported backbones and their pooled features: ResNet, EfficientNet and
MobileNet (global average pooling of the last feature map, as their
`ImageClassifier`s), ViT (the class token, as `ViTImageClassifier`; the
mean token without one), DINOv2 (the class token after the final layer
norm), CLIP (the class token of the vision encoder after its final layer
norm, CLIP's vision "pooled output", before the projection) and SigLIP (the
vision encoder's attention-pooling head).

keras-hub is an optional dependency: `pip install "la_keras[hub]"`.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re

import keras

from la_keras.models.applications import BACKBONE
from la_keras.models.applications import assemble
from la_keras.models.applications import check_image_size
from la_keras.models.pretrained_weights import _first_line
from la_keras.models.pretrained_weights import load_backbone_weights
from la_keras.models.specs import HUB_PREFIX
from la_keras.models.specs import ModelSpec

# The `weights` that load the preset's own weights.
PRESET_WEIGHTS = "preset"


@dataclasses.dataclass(frozen=True)
class Family:
    """How a KerasHub backbone class becomes a pooled-feature backbone.

    Args:
        pooling: "gap" (global average pooling of a `[B, H, W, C]` feature
            map), "token" (the class token of a `[B, N, D]` sequence; the
            mean token for a ViT without one) or "pooled" (the output is
            already `[B, D]`).
        shape_arg: the config key of the input shape, which is set to the
            model's image size; None for a backbone of one fixed size (its
            position embeddings), which refuses another.
        tower: the attribute holding the vision tower (CLIP, SigLIP), or
            None for the backbone itself.
    """

    pooling: str
    shape_arg: str | None = "image_shape"
    tower: str | None = None


FAMILIES = {
    "ResNetBackbone": Family("gap"),
    "EfficientNetBackbone": Family("gap", "input_shape"),
    "MobileNetBackbone": Family("gap"),
    "ViTBackbone": Family("token", None),
    # Interpolates its position embeddings to the image size.
    "DINOV2Backbone": Family("token"),
    "CLIPBackbone": Family("token", None, "vision_encoder"),
    "SigLIPBackbone": Family("pooled", None, "vision_encoder"),
}


def import_keras_hub():
    """`keras_hub`, or an ImportError saying how to install it."""
    try:
        import keras_hub
    except ImportError as e:
        raise ImportError(
            f"--model=hub:<preset> needs keras-hub ({e}): pip install "
            '"la_keras[hub]" (keras-hub and tensorflow-text).'
        ) from None
    return keras_hub


def spec(preset: str):
    """The registry's `ModelSpec` of `hub:<preset>`.

    Building and loading read the preset (KerasHub downloads a named one
    once); this call only checks that keras-hub is installed.

    Raises:
        ImportError: keras-hub is not installed.
        ValueError: an empty preset.
    """
    if not preset:
        raise ValueError(
            "Invalid value for argument `preset`. Expected a KerasHub preset "
            "name or directory after 'hub:'. Received: preset=''"
        )
    import_keras_hub()
    return ModelSpec(
        HUB_PREFIX + preset,
        functools.partial(hub_model, preset),
        None,
        f"KerasHub preset {preset}: its vision backbone, pretrained",
        functools.partial(load_pretrained, preset),
    )


def _where(preset: str) -> str:
    """What KerasHub reads: a directory (expanded) or a preset name."""
    path = os.path.expanduser(preset)
    local = "://" not in preset and (
        os.sep in preset or preset.startswith((".", "~")) or os.path.isdir(path)
    )
    if local and not os.path.isdir(path):
        # A ValueError, as every bad `--model`, which launch reports as such.
        raise ValueError(
            f"Invalid value for argument `preset`: the KerasHub preset "
            f"directory {preset} does not exist. Expected a KerasHub preset "
            "name or a directory written by save_to_preset. Received: "
            f"preset={preset!r}"
        )
    return path if local else preset


def _loader(preset: str):
    """The KerasHub preset loader of `preset`; one-line errors."""
    import_keras_hub()
    from keras_hub.src.utils.preset_utils import get_preset_loader

    where = _where(preset)
    try:
        return get_preset_loader(where)
    except ValueError:
        raise ValueError(
            f"Invalid value for argument `preset`. Expected a KerasHub preset "
            "name or a preset directory (with config.json, written by "
            f"save_to_preset). Received: preset={preset!r}"
        ) from None
    except OSError as e:  # no internet, a proxy, ...
        raise ValueError(
            f"KerasHub preset {preset!r} cannot be downloaded "
            f"({_first_line(e)}). Without internet, pass the preset's "
            "directory copied from a machine that has it."
        ) from None


def _family(preset: str, loader) -> Family:
    name = loader.check_backbone_class().__name__
    if name not in FAMILIES:
        raise ValueError(
            f"Invalid value for argument `preset`: {preset!r} is a {name}, "
            "not a supported vision backbone. Expected a preset of "
            f"{', '.join(FAMILIES)}. Received: preset={preset!r}"
        )
    return FAMILIES[name]


def _converter(preset: str):
    """The preset's image converter; ValueError if it has none."""
    keras_hub = import_keras_hub()
    try:
        return keras_hub.layers.ImageConverter.from_preset(_where(preset))
    except (OSError, ValueError, KeyError) as e:  # no converter file
        raise ValueError(
            f"KerasHub preset {preset!r} has no image converter "
            f"({_first_line(e)}); save it with "
            "ImageConverter.save_to_preset beside the backbone."
        ) from None


def _hub_backbone(preset, loader, family, size, load_weights):
    """The preset's KerasHub backbone (the vision tower) for `size`."""
    overrides = {}
    if family.shape_arg is not None:
        overrides[family.shape_arg] = (*size, 3)
    cls = loader.check_backbone_class()
    try:
        backbone = loader.load_backbone(cls, load_weights, **overrides)
    except OSError as e:
        raise ValueError(
            f"The weights of KerasHub preset {preset!r} cannot be read or "
            f"downloaded ({_first_line(e)})."
        ) from None
    return getattr(backbone, family.tower) if family.tower else backbone


def _check_no_width(width) -> None:
    if width is not None:
        raise ValueError(
            f"Invalid value for argument `width`: KerasHub backbones have no "
            f"width multiplier; leave it unset. Received: width={width!r}"
        )


def _fixed_size(tower) -> tuple[int, int]:
    return tuple(int(d) for d in tower.image_shape[:2])


def _features(tower, family: Family, size) -> keras.Model:
    """`tower` and its pooling as the nested model `backbone`."""
    images = keras.Input(shape=(*size, 3), name="images")
    x = tower({"images": images} if isinstance(tower.input, dict) else images)
    if family.pooling == "gap":
        x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    elif family.pooling == "token" and getattr(tower, "use_class_token", True):
        # Token 0 of the sequence, with built-in (serializable) layers.
        x = keras.layers.Cropping1D((0, x.shape[1] - 1), name="class_token")(x)
        x = keras.layers.Flatten(name="pool")(x)
    elif family.pooling == "token":
        x = keras.layers.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(images, x, name=BACKBONE)


def hub_model(
    preset: str,
    num_classes: int,
    input_shape,
    weight_decay: float = 5e-4,
    classifier: str = "dense",
    *,
    image_size=None,
    width=None,
    preprocessing: str = "cifar",
) -> keras.Model:
    """KerasHub preset `preset`'s vision backbone with a logits head, random
    weights (load the preset's with `load_pretrained(preset, model,
    "preset")`).

    Args:
        preset: a KerasHub preset name or a local preset directory.
        num_classes: number of output logits.
        input_shape: `(H, W, C)` of the dataset's normalised images.
        weight_decay: L2 factor on every convolution and dense kernel.
        classifier: the head, "dense" or "normed".
        image_size: `(H, W)` the backbone sees; default the preset's image
            converter's size. ViT, CLIP and SigLIP take their own size only.
        width: must be None (KerasHub backbones have no width multiplier).
        preprocessing: the recipe that normalised the inputs, "cifar" or
            "imagenet" (`DatasetInfo.preprocessing`).

    Raises:
        ImportError: keras-hub is not installed.
        ValueError: a preset directory that does not exist, an unknown
            preset, one that is not a supported vision backbone or has no
            image converter, a width, or an image size the backbone does
            not take.
    """
    _check_no_width(width)
    loader = _loader(preset)
    family = _family(preset, loader)
    converter = _converter(preset)
    if image_size is None and converter.image_size is not None:
        image_size = converter.image_size
    size = check_image_size(image_size)
    tower = _hub_backbone(preset, loader, family, size, load_weights=False)
    if family.shape_arg is None and _fixed_size(tower) != size:
        fixed = _fixed_size(tower)
        raise ValueError(
            f"Invalid value for argument `image_size`: KerasHub preset "
            f"{preset!r} takes {fixed[0]}x{fixed[1]} images only (its "
            f"position embeddings). Received: image_size={image_size!r}"
        )
    converter_layer = keras.layers.Rescaling(
        1.0 if converter.scale is None else converter.scale,
        0.0 if converter.offset is None else converter.offset,
        name="image_converter",
    )
    name = "hub_" + re.sub(r"\W+", "_", os.path.basename(preset.rstrip("/\\")))
    return assemble(
        name, input_shape, preprocessing, size, "raw",
        _features(tower, family, size), num_classes, classifier, weight_decay,
        scaling=(converter_layer,),
    )  # fmt: skip


def load_pretrained(preset: str, model, weights: str, width=None) -> None:
    """Loads `weights` into the backbone of `model` (built by
    `hub_model(preset, ...)`): "preset" for the preset's own weights, or a
    `.weights.h5` file of the nested `backbone` model
    (`model.get_layer("backbone").save_weights(path)`).

    Raises:
        FileNotFoundError, ValueError: see
            `pretrained_weights.load_backbone_weights`; ValueError also for
            a width, "imagenet", or preset weights that cannot be read or
            downloaded.
    """
    _check_no_width(width)
    backbone = model.get_layer(BACKBONE)
    if weights == "imagenet":
        raise ValueError(
            f"Invalid value for argument `weights`. Expected "
            f"{PRESET_WEIGHTS!r} (the preset's own weights) or a weights "
            f"file for --model=hub:{preset}. Received: weights='imagenet'"
        )
    if weights != PRESET_WEIGHTS:
        load_backbone_weights(backbone, weights, f"--model=hub:{preset}")
        return
    loader = _loader(preset)
    family = _family(preset, loader)
    size = tuple(int(d) for d in backbone.input_shape[1:3])
    published = _hub_backbone(preset, loader, family, size, load_weights=True)
    backbone.set_weights(published.get_weights())
