"""AdaptFormer: a bottleneck MLP beside each transformer block's MLP.

AdaptFormer (Chen et al., NeurIPS 2022), as LIFT (Shi et al., ICML 2024)
places and initialises it: in each block of a vision transformer, with
`h` the block's hidden state after attention (the input of its MLP
branch),

```python
out = h + mlp(norm_2(h)) + s * up(relu(down(layer_norm(h))))
```

with its own layer norm, `down` to `r` units (Kaiming normal, a=sqrt(5),
zero bias), `up` back to the width (zero kernel and bias: the block starts
as the pretrained one) and a learnable scalar `s` (1). The bottleneck is
LIFT's `r = 2 ** max(0, floor(log2(C / (2 L))))` for C classes and L
blocks.

`AdaptFormerBackbone` wraps the nested `backbone` model of a `hub:` model
(`la_keras.models.hub`) and adds the modules to the KerasHub blocks inside
it (ViT, CLIP's and SigLIP's vision encoders, DINOv2): its config is the
backbone's and the bottleneck, so `.keras` files and checkpoints restore
it. The modules stay in the served graph: they cannot merge into the
frozen weights (a ReLU lies between `down` and `up`).
"""

from __future__ import annotations

import math
import types

import keras
from keras import ops
from keras.saving import register_keras_serializable


def bottleneck_width(num_classes: int, num_blocks: int) -> int:
    """LIFT's adapter width: `2 ** max(0, floor(log2(C / (2 L))))`."""
    return 2 ** max(0, int(math.log2(num_classes / (2 * num_blocks))))


@register_keras_serializable(package="la_keras")
class AdaptFormerAdapter(keras.layers.Layer):
    """AdaptFormer's module: `s * up(relu(down(layer_norm(x))))`.

    Args:
        bottleneck: the width `r` of the bottleneck.
        **kwargs: base layer arguments.

    Example:

    ```python
    adapter = AdaptFormerAdapter(4)
    adapter(np.ones((2, 5, 16), "float32"))  # zeros: `up` starts at zero
    ```

    References:
        - [Chen et al., 2022](https://arxiv.org/abs/2205.13535)
        - [Shi et al., 2024](https://arxiv.org/abs/2309.14496), `AdaptFormer`
          in `shijxcs/LIFT`, `models/peft_modules.py`.
    """

    def __init__(self, bottleneck: int, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(bottleneck, int) or bottleneck < 1:
            raise ValueError(
                "Invalid value for argument `bottleneck`. Expected an integer "
                f">= 1. Received: bottleneck={bottleneck!r}"
            )
        self.bottleneck = bottleneck

    def build(self, input_shape):
        width = int(input_shape[-1])
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=1e-5, dtype=self.dtype_policy, name="layer_norm"
        )
        # PyTorch's kaiming_normal_(a=sqrt(5)): N(0, 1 / (3 fan_in)).
        self.down = keras.layers.Dense(
            self.bottleneck,
            kernel_initializer=keras.initializers.VarianceScaling(
                1.0 / 3.0, "fan_in", "untruncated_normal"
            ),
            dtype=self.dtype_policy,
            name="down",
        )
        self.up = keras.layers.Dense(
            width,
            kernel_initializer="zeros",
            dtype=self.dtype_policy,
            name="up",
        )
        self.layer_norm.build(input_shape)
        self.down.build(input_shape)
        self.up.build((*input_shape[:-1], self.bottleneck))
        self.scale = self.add_weight(name="scale", shape=(), initializer="ones")

    def call(self, inputs):
        x = self.up(ops.relu(self.down(self.layer_norm(inputs))))
        return x * ops.cast(self.scale, x.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "bottleneck": self.bottleneck}


# The forward pass of each KerasHub block, with the adapter beside its MLP
# (each mirrors the block's own `call` in keras-hub 0.2x-0.3x).


def _vit_call(self, inputs):
    x = self.layer_norm_1(inputs)
    x = self.mha(x, x)
    x = self.dropout(x)
    h = x + inputs
    return h + self.mlp(self.layer_norm_2(h)) + self.adaptformer(h)


def _clip_call(self, x, training=None):
    residual = x
    x = self.layer_norm_1(x)
    x = self.attention(
        x, x, x, training=training, use_causal_mask=self.use_causal_mask
    )
    h = ops.add(residual, x)
    x = self.dense_2(self.activation(self.dense_1(self.layer_norm_2(h))))
    return ops.add(ops.add(h, x), self.adaptformer(h))


def _siglip_call(self, inputs, training=None):
    x = self.layer_norm1(inputs)
    x = self.self_attn(
        x, x, x, training=training, use_causal_mask=self.use_causal_mask
    )
    h = ops.add(inputs, x)
    x = self.mlp(self.layer_norm2(h), training=training)
    return ops.add(ops.add(h, x), self.adaptformer(h))


def _dinov2_call(self, inputs, training=None):
    x = self.norm1(inputs, training=training)
    x = self.attention(x, training=training)
    x = self.layer_scale1(x, training=training)
    h = ops.add(self.drop_path(x, training=training), inputs)
    x = self.mlp(self.norm2(h, training=training), training=training)
    x = self.layer_scale2(x, training=training)
    x = self.drop_path(x, training=training)
    return ops.add(ops.add(h, x), self.adaptformer(h))


BLOCKS = {
    "ViTEncoderBlock": _vit_call,
    "CLIPEncoderLayer": _clip_call,
    "SigLIPEncoderLayer": _siglip_call,
    "DINOV2Layer": _dinov2_call,
}


def transformer_blocks(model) -> list:
    """The KerasHub transformer blocks inside `model`, in order."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if type(layer).__name__ in BLOCKS
    ]


def adapters(model) -> list:
    """The AdaptFormer modules inside `model`."""
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, AdaptFormerAdapter)
    ]


@register_keras_serializable(package="la_keras")
class AdaptFormerBackbone(keras.layers.Layer):
    """A backbone model with AdaptFormer beside each transformer block's MLP.

    Args:
        backbone: the backbone (a model holding KerasHub transformer blocks:
            ViT, CLIP, SigLIP, DINOv2), or its serialized config. Its
            blocks are changed in place to call their adapters.
        bottleneck: the adapters' width `r`.
        **kwargs: base layer arguments.

    Raises:
        ValueError: the backbone has no KerasHub transformer block, or a
            block already has an adapter.
    """

    def __init__(self, backbone, bottleneck: int, **kwargs):
        super().__init__(**kwargs)
        if isinstance(backbone, dict):
            backbone = keras.saving.deserialize_keras_object(backbone)
        blocks = transformer_blocks(backbone)
        if not blocks:
            raise ValueError(
                f"The backbone {backbone.name!r} has no transformer block "
                f"AdaptFormer knows ({', '.join(BLOCKS)}): AdaptFormer adapts "
                "KerasHub ViT, CLIP, SigLIP and DINOv2 presets (hub:)."
            )
        for block in blocks:
            if hasattr(block, "adaptformer"):
                raise ValueError(
                    f"Block {block.name!r} already has an AdaptFormer module."
                )
            adapter = AdaptFormerAdapter(
                bottleneck, dtype=block.dtype_policy, name="adaptformer"
            )
            adapter.build((None, None, int(block.hidden_dim)))
            # A built layer takes new sub-layers only unlocked, as Keras's
            # own `enable_lora` adds its adapters.
            block._tracker.unlock()
            block.adaptformer = adapter
            block._tracker.lock()
            block.call = types.MethodType(BLOCKS[type(block).__name__], block)
        self.backbone = backbone
        self.bottleneck = bottleneck

    def call(self, inputs, training=None, mask=None):
        return self.backbone(inputs, training=training)

    def compute_output_shape(self, input_shape):
        return self.backbone.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "bottleneck": self.bottleneck,
        }


def add_adaptformer(model, num_classes: int, backbone: str = "backbone"):
    """`model` with its nested `backbone` wrapped in an
    `AdaptFormerBackbone` of LIFT's bottleneck width for `num_classes`.

    The layers of `model` are reused (the backbone's blocks are changed in
    place); use the model returned.
    """
    inner = model.get_layer(backbone)
    blocks = transformer_blocks(inner)
    width = bottleneck_width(num_classes, max(1, len(blocks)))

    def clone(layer):
        if layer is inner:
            return AdaptFormerBackbone(layer, width, name=backbone)
        return layer

    return keras.models.clone_model(model, clone_function=clone)
