"""Fine-tuning a pretrained model: full, linear probing, normalisation,
BitFit, LoRA; the class-mean head; LoRA merged for export.

A pretrained registry model holds its backbone as a nested model named
`backbone` and its head as the layer `logits` (see
`la_keras.models.applications`). `prepare` sets what trains:

- `"full"`: every weight;
- `"linear"`: the head only; the backbone is frozen, its batch norm in
  inference mode (also the classifier re-training of decoupled training,
  cRT, on a backbone trained before);
- `"lora"`: Keras's LoRA (`layer.enable_lora(rank)`) on every Dense,
  EinsumDense, Embedding and convolution layer of the backbone; their base
  kernels and biases and every other backbone weight (batch norm included,
  in inference mode) frozen; adapters and head train;
- `"bn"`: the normalisation layers (batch, layer and group norm: their
  scales and offsets, and batch norm's statistics, in training mode) and
  the head; every other backbone weight frozen;
- `"bitfit"`: as `"bn"`, and the biases of the backbone's other layers
  (BitFit, Ben Zaken et al., ACL 2022);
- `"lora_bn"`: as `"lora"`, with the normalisation layers training as in
  `"bn"`;
- `"ssf"`: a per-channel scale and shift after each normalisation layer
  (`la_keras.models.ssf`; the model is rebuilt with them) and the head;
  every other backbone weight frozen, batch norm in inference mode;
- `"adaptformer"`: AdaptFormer modules beside the MLP of each transformer
  block of a KerasHub backbone (`la_keras.models.adaptformer`, LIFT's
  placement and width) and the head; every other backbone weight frozen.

`merged` gives the same function as a plain model, LoRA adapters folded
into the kernels and SSF into the normalisation layers, for export: serving
costs nothing extra.
"""

from __future__ import annotations

import os
import tempfile

import keras
import numpy as np

from la_keras.models import adaptformer
from la_keras.models import ssf

MODES = (
    "full", "linear", "lora", "bn", "bitfit", "lora_bn", "ssf", "adaptformer",
)  # fmt: skip
NORMALIZATIONS = (
    keras.layers.BatchNormalization,
    keras.layers.LayerNormalization,
    keras.layers.GroupNormalization,
)
BACKBONE = "backbone"
HEAD = "logits"


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(
            f"Invalid value for argument `mode`. Expected one of {MODES}. "
            f"Received: mode={mode!r}"
        )
    return mode


def backbone_of(model: keras.Model):
    """The nested `backbone` model of a pretrained registry model."""
    try:
        return model.get_layer(BACKBONE)
    except ValueError:
        raise ValueError(
            f"Model {model.name!r} has no layer named {BACKBONE!r}: fine-tuning "
            "modes and pretrained weights apply to the registry's pretrained "
            "backbones (la_keras.models.registry)."
        ) from None


def prepare(model: keras.Model, mode: str, lora_rank: int = 8) -> keras.Model:
    """Sets which weights of `model` train for fine-tuning `mode`.

    Call it after loading the pretrained weights (LoRA adapters start at
    zero, so the model's function is unchanged) and before building the
    optimizer. Returns `model`, or for "ssf" and "adaptformer" a model
    with the new modules (use the model returned).
    """
    check_mode(mode)
    backbone = backbone_of(model)
    if mode == "adaptformer":
        num_classes = int(model.get_layer(HEAD).units)
        model = adaptformer.add_adaptformer(model, num_classes, BACKBONE)
        trained = {
            id(v) for a in adaptformer.adapters(model) for v in a.weights
        }
        for variable in backbone_of(model).weights:
            variable.trainable = id(variable) in trained
    elif mode == "ssf":
        model = ssf.add_ssf(model, BACKBONE)
        for layer in backbone_of(model)._flatten_layers(include_self=False):
            for variable in layer._trainable_variables:
                variable.trainable = variable.name in ssf.SSF_WEIGHTS
    elif mode == "linear":
        backbone.trainable = False
    elif mode in ("bn", "bitfit"):
        _train_normalization(model, backbone, biases=mode == "bitfit")
    elif mode in ("lora", "lora_bn"):
        _enable_lora(model, backbone, lora_rank, norms=mode == "lora_bn")
    return model


def _train_normalization(model, backbone, biases: bool) -> None:
    """Freezes the backbone but its normalisation layers (and biases)."""
    layers = list(backbone._flatten_layers(include_self=False))
    if not any(isinstance(layer, NORMALIZATIONS) for layer in layers):
        raise ValueError(
            f"The backbone of {model.name!r} has no batch, layer or group "
            "normalisation layer to train; use mode='lora', 'linear' or "
            "'full'."
        )
    for layer in layers:
        if isinstance(layer, NORMALIZATIONS):
            continue  # trains; batch norm in training mode
        bias = getattr(layer, "bias", None) if biases else None
        own = layer._trainable_variables + layer._non_trainable_variables
        for variable in own:
            variable.trainable = variable is bias


def _enable_lora(model, backbone, lora_rank, norms: bool) -> None:
    """LoRA adapters on the backbone; everything else frozen, but the
    normalisation layers when `norms`."""
    if int(lora_rank) < 1:
        raise ValueError(
            "Invalid value for argument `lora_rank`. Expected an integer "
            f">= 1. Received: lora_rank={lora_rank}"
        )
    adapted = 0
    for layer in backbone._flatten_layers(include_self=False):
        own = layer._trainable_variables + layer._non_trainable_variables
        # A KerasHub backbone (a nested model) has its own `enable_lora`;
        # its layers are adapted one by one here.
        if (
            hasattr(layer, "enable_lora")
            and not isinstance(layer, keras.Model)
            and layer.built
        ):
            if not layer.lora_enabled:
                layer.enable_lora(int(lora_rank))
            for variable in own:
                if not variable.name.startswith("lora_"):
                    variable.trainable = False
            adapted += 1
        elif norms and isinstance(layer, NORMALIZATIONS):
            continue  # trains; batch norm in training mode
        elif not layer._layers:
            # A leaf: batch norm then runs in inference mode.
            layer.trainable = False
        else:
            for variable in own:  # a container's own weights only
                variable.trainable = False
    if not adapted:
        raise ValueError(
            f"The backbone of {model.name!r} has no Dense, EinsumDense, "
            "Embedding or convolution layer to adapt with LoRA; use "
            "mode='linear' or 'full'."
        )


def merged(model: keras.Model) -> keras.Model:
    """`model` as a plain model: LoRA adapters merged into the kernels, SSF
    into the normalisation layers (`model` itself when it has neither)."""
    return ssf.merge_ssf(merge_lora(model))


def lora_layers(model: keras.Model) -> list:
    """The layers of `model` with LoRA enabled."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if getattr(layer, "lora_enabled", False)
    ]


def merge_lora(model: keras.Model) -> keras.Model:
    """`model` as a plain model with its LoRA adapters merged.

    Returns `model` itself when no layer has LoRA; otherwise a clone whose
    adapted layers are plain again and whose kernels are
    `kernel + lora_a @ lora_b * (alpha / rank)` (what Keras saves for a
    LoRA layer), every other weight copied.
    """
    if not lora_layers(model):
        return model

    # The model rebuilt from its config with LoRA off. (Not a recursive
    # `clone_model`: it would rebuild the layers inside a KerasHub backbone
    # one by one from their own configs, which do not all round-trip.)
    config = _without_lora(keras.saving.serialize_keras_object(model))
    config.pop("compile_config", None)
    clone = keras.saving.deserialize_keras_object(config)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "merged.weights.h5")
        model.save_weights(path)  # LoRA layers save their merged kernels
        clone.load_weights(path)
    return clone


def _without_lora(config):
    """A serialized config with every `lora_rank` set to None."""
    if isinstance(config, dict):
        config = {k: _without_lora(v) for k, v in config.items()}
        if config.get("lora_rank"):
            config["lora_rank"] = None
            config.pop("lora_alpha", None)
        return config
    if isinstance(config, list):
        return [_without_lora(v) for v in config]
    return config


def head_features_model(model: keras.Model) -> keras.Model:
    """`model` up to the input of its head: the pooled backbone features."""
    return keras.Model(model.input, model.get_layer(HEAD).input)


def class_mean_head(
    model: keras.Model, batches, num_classes: int
) -> np.ndarray:
    """Initialises the head from the normalised class means of the features.

    One pass over `batches` (`(images, labels)` of the training set,
    preprocessed for evaluation) computes each class's mean feature; the
    head's kernel columns become those means scaled to unit length and its
    bias (if any) zero, as LIFT's `init_head_class_mean`.

    Returns:
        The `[D, num_classes]` kernel set.

    Raises:
        ValueError: a class without any example in `batches`.
    """
    features_model = head_features_model(model)
    sums = counts = None
    for images, labels in batches:
        features = np.asarray(
            features_model(images, training=False), np.float64
        )
        labels = np.asarray(labels).astype(np.int64).reshape(-1)
        if sums is None:
            sums = np.zeros((num_classes, features.shape[-1]))
            counts = np.zeros(num_classes)
        np.add.at(sums, labels, features)
        counts += np.bincount(labels, minlength=num_classes)
    if sums is None or (counts == 0).any():
        missing = [] if counts is None else np.flatnonzero(counts == 0).tolist()
        raise ValueError(
            "Invalid value for argument `batches`: the class-mean head needs "
            f"examples of every class; none of classes {missing[:10]} (or no "
            "batches at all) were seen."
        )
    means = sums / counts[:, None]
    means /= np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)
    set_head(model, means.T)
    return means.T


def head_kernel(model: keras.Model):
    """The `[D, num_classes]` kernel variable of the head of `model`."""
    head = model.get_layer(HEAD)
    kernel = getattr(head, "_kernel", None)  # a LoRA-enabled Dense's
    return head.kernel if kernel is None else kernel


def set_head(model: keras.Model, kernel: np.ndarray) -> None:
    """Sets the head's kernel to `kernel` (`[D, num_classes]`) and its bias
    (if any) to zero."""
    variable = head_kernel(model)
    variable.assign(np.asarray(kernel).astype(variable.dtype))
    head = model.get_layer(HEAD)
    if getattr(head, "bias", None) is not None:
        head.bias.assign(np.zeros(head.bias.shape, head.bias.dtype))
