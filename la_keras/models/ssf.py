"""SSF: a per-channel scale and shift after each normalisation layer.

Scaling and Shifting your Features (Lian et al., NeurIPS 2022) fine-tunes
a frozen backbone through `y = scale * x + shift` after each of its
normalisation layers, per channel; LIFT (Shi et al., 2024) offers it
among its parameter-efficient modes. Both start `scale ~ N(1, 0.02)` and
`shift ~ N(0, 0.02)`.

`add_ssf(model)` rebuilds a registry model with every batch, layer and
group normalisation layer of its `backbone` replaced by the same layer
followed by its scale and shift (`SSFBatchNormalization`, ...), the
weights copied. The normalisation itself stays frozen: batch norm runs in
inference mode, with the statistics of the pretrained weights.

`merge_ssf(model)` folds each scale and shift into its normalisation
layer, which is affine:

```python
scale * (gamma * x_hat + beta) + shift
    == (scale * gamma) * x_hat + (scale * beta + shift)
```

so the merged model is the plain architecture again, and serving costs
nothing extra; TFLite then folds the batch norm into the convolution
before it.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops
from keras.saving import register_keras_serializable

SSF_WEIGHTS = ("ssf_scale", "ssf_shift")


class _ScaleShift:
    """The scale and shift after a normalisation layer's own output."""

    def build(self, input_shape):
        super().build(input_shape)
        axis = self.axis if isinstance(self.axis, int) else self.axis[-1]
        self._ssf_axis = axis % len(input_shape)
        channels = int(input_shape[self._ssf_axis])
        self.ssf_scale = self.add_weight(
            name="ssf_scale",
            shape=(channels,),
            initializer=keras.initializers.RandomNormal(1.0, 0.02),
        )
        self.ssf_shift = self.add_weight(
            name="ssf_shift",
            shape=(channels,),
            initializer=keras.initializers.RandomNormal(0.0, 0.02),
        )

    def _scale_shift(self, outputs):
        shape = [1] * len(outputs.shape)
        shape[self._ssf_axis] = -1
        scale = ops.reshape(ops.cast(self.ssf_scale, outputs.dtype), shape)
        shift = ops.reshape(ops.cast(self.ssf_shift, outputs.dtype), shape)
        return outputs * scale + shift


@register_keras_serializable(package="la_keras")
class SSFBatchNormalization(_ScaleShift, keras.layers.BatchNormalization):
    """`BatchNormalization` in inference mode, then SSF's scale and shift.

    Formula:

    ```python
    y = ssf_scale * (gamma * (x - moving_mean)
                     / sqrt(moving_variance + epsilon) + beta) + ssf_shift
    ```

    Its statistics never update: SSF fine-tunes a frozen backbone.

    Example:

    ```python
    layer = la_keras.models.ssf.SSFBatchNormalization()
    y = layer(np.ones((2, 4, 4, 8), "float32"), training=True)
    ```

    References:
        - [Lian et al., 2022](https://arxiv.org/abs/2210.08823)
    """

    def call(self, inputs, training=None, mask=None):
        outputs = super().call(inputs, training=False, mask=mask)
        return self._scale_shift(outputs)


@register_keras_serializable(package="la_keras")
class SSFLayerNormalization(_ScaleShift, keras.layers.LayerNormalization):
    """`LayerNormalization`, then SSF's scale and shift on its last axis."""

    def call(self, inputs):
        return self._scale_shift(super().call(inputs))


@register_keras_serializable(package="la_keras")
class SSFGroupNormalization(_ScaleShift, keras.layers.GroupNormalization):
    """`GroupNormalization`, then SSF's scale and shift per channel."""

    def call(self, inputs):
        return self._scale_shift(super().call(inputs))


# Keras's normalisation layers and their SSF forms, by serialized name.
_PLAIN = ("BatchNormalization", "LayerNormalization", "GroupNormalization")
_SSF = {
    "BatchNormalization": SSFBatchNormalization,
    "LayerNormalization": SSFLayerNormalization,
    "GroupNormalization": SSFGroupNormalization,
}


def ssf_layers(model: keras.Model) -> list:
    """The layers of `model` with an SSF scale and shift."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, _ScaleShift)
    ]


def add_ssf(model: keras.Model, backbone: str = "backbone") -> keras.Model:
    """A copy of `model` whose `backbone` has SSF after each normalisation.

    Every weight of `model` is copied; the new scales and shifts start at
    SSF's initialisation. Nothing of `model` changes.

    Raises:
        ValueError: the backbone's graph holds no batch, layer or group
            normalisation layer (e.g. a KerasHub backbone, whose layers
            live inside its blocks).
    """
    config = _config(model)
    count = [0]

    def to_ssf(item):
        if item.get("class_name") in _PLAIN and item.get("module") == (
            "keras.layers"
        ):
            count[0] += 1
            cls = _SSF[item["class_name"]]
            item = dict(item, class_name=cls.__name__, module=cls.__module__)
            item["registered_name"] = keras.saving.get_registered_name(cls)
        return item

    config = _rewrite(config, to_ssf, inside=backbone)
    if not count[0]:
        raise ValueError(
            f"The backbone of {model.name!r} has no batch, layer or group "
            "normalisation layer in its graph for SSF to follow (KerasHub "
            "backbones keep theirs inside their blocks); use mode='bn', "
            "'lora' or 'full'."
        )
    rebuilt = keras.saving.deserialize_keras_object(config)
    _copy_weights(model, rebuilt)
    return rebuilt


def merge_ssf(model: keras.Model) -> keras.Model:
    """`model` with each SSF scale and shift folded into its normalisation.

    Returns `model` itself when it has no SSF layer; otherwise the plain
    architecture (Keras's own normalisation layers), every weight copied
    and `gamma, beta = scale * gamma, scale * beta + shift`.
    """
    if not ssf_layers(model):
        return model

    def to_plain(item):
        name = item.get("registered_name")
        for plain, cls in _SSF.items():
            if name == keras.saving.get_registered_name(cls):
                item = dict(item, class_name=plain, module="keras.layers")
                item["registered_name"] = None
                # Both affine parts, to hold the merged scale and shift.
                item["config"] = dict(item["config"], center=True, scale=True)
        return item

    rebuilt = keras.saving.deserialize_keras_object(
        _rewrite(_config(model), to_plain)
    )
    _copy_weights(model, rebuilt, merge=True)
    return rebuilt


def _config(model):
    config = keras.saving.serialize_keras_object(model)
    config.pop("compile_config", None)
    return config


def _rewrite(config, change, inside=None, within=False):
    """`config` with `change` applied to every layer entry (in the nested
    model named `inside` only, when given)."""
    if isinstance(config, list):
        return [_rewrite(v, change, inside, within) for v in config]
    if not isinstance(config, dict):
        return config
    if inside is not None and config.get("name") == inside:
        within = True
    if "class_name" in config and (within or inside is None):
        config = change(config)
    return {k: _rewrite(v, change, inside, within) for k, v in config.items()}


def _copy_weights(source, target, merge: bool = False) -> None:
    """Copies every weight of `source` into the same-named layer and weight
    of `target` (built from a rewritten config of `source`)."""
    pairs = zip(
        source._flatten_layers(include_self=False),
        target._flatten_layers(include_self=False),
        strict=True,
    )
    for old, new in pairs:
        if old.name != new.name:
            raise ValueError(
                f"Layer {new.name!r} of the rebuilt model does not match "
                f"{old.name!r}: the model's config does not round-trip."
            )
        values = {v.name: np.asarray(v.numpy()) for v in _own(old)}
        if merge and isinstance(old, _ScaleShift):
            values = _merged(old, values)
        for variable in _own(new):
            if variable.name in values:
                variable.assign(values[variable.name])


def _own(layer) -> list:
    """A layer's own variables, not those of the layers it holds."""
    return layer._trainable_variables + layer._non_trainable_variables


def _merged(layer, values: dict) -> dict:
    scale = values.pop("ssf_scale")
    shift = values.pop("ssf_shift")
    gamma = values.get("gamma", np.ones_like(scale))
    beta = values.get("beta", np.zeros_like(shift))
    if getattr(layer, "rms_scaling", False):
        raise ValueError(
            f"Layer {layer.name!r}: an RMS-scaled layer normalisation has no "
            "offset to merge SSF's shift into."
        )
    values["gamma"] = (scale * gamma).astype(gamma.dtype)
    values["beta"] = (scale * beta + shift).astype(beta.dtype)
    return values
