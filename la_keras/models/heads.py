"""The classifier heads a registry model can end in, and its weight decay."""

from __future__ import annotations

import keras
from keras import layers

from la_keras.layers.normed_dense import NormedDense

# "dense": a linear layer (logits); "normed": a cosine classifier
# (`la_keras.layers.NormedDense`, the head of Cao et al.'s LDAM).
CLASSIFIERS = ("dense", "normed")


def check_classifier(classifier: str) -> str:
    """`classifier` if it is one of `CLASSIFIERS`; ValueError otherwise."""
    if classifier not in CLASSIFIERS:
        raise ValueError(
            "Invalid value for argument `classifier`. Expected one of "
            f"{', '.join(CLASSIFIERS)}. Received: classifier={classifier!r}"
        )
    return classifier


def scale_cosines(model, scale: float):
    """Sets the factor of the cosines of `model`'s `NormedDense` head (the
    layer `logits`), before the model first runs: the cosine classifier of
    LIFT, scale 25. Returns `model`."""
    head = model.get_layer("logits")
    if not isinstance(head, NormedDense):
        raise ValueError(
            "Invalid value for argument `model`. Expected a model whose "
            f"`logits` layer is a NormedDense. Received: {type(head).__name__}"
        )
    head.scale = NormedDense(1, scale=scale).scale  # checked as the layer's
    return model


def logits_layer(
    num_classes: int,
    classifier: str,
    name: str = "logits",
    kernel_regularizer=None,
    bias_regularizer=None,
):
    """The head: a Dense layer (N(0, 0.01) kernel) or a `NormedDense`
    (which has no bias: `bias_regularizer` is for the Dense one).

    Under a mixed dtype policy (`mixed_bfloat16`, `mixed_float16`) the head
    computes in float32, as Keras's mixed-precision guide advises for a
    model's outputs: the logits, and what the losses add to them, keep
    float32's precision.
    """
    dtype = "float32" if _mixed_policy() else None
    if check_classifier(classifier) == "normed":
        return NormedDense(
            num_classes,
            kernel_regularizer=kernel_regularizer,
            name=name,
            dtype=dtype,
        )
    return layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
        kernel_regularizer=kernel_regularizer,
        bias_regularizer=bias_regularizer,
        name=name,
        dtype=dtype,
    )


def _mixed_policy() -> bool:
    policy = keras.config.dtype_policy()
    return policy.compute_dtype != policy.variable_dtype


def add_weight_decay(model: keras.Model, weight_decay: float) -> None:
    """An L2 penalty of `weight_decay` on every convolution and dense kernel
    of a built `model` (nested models included); 0 adds none.

    The built kernel carries the penalty (`model.losses`, computed over the
    trainable weights only, so frozen layers add nothing); the layer
    attribute keeps it in `get_config`.
    """
    if not weight_decay:
        return
    kinds = (layers.Conv2D, layers.Dense, NormedDense)
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, kinds):
            layer.kernel_regularizer = keras.regularizers.L2(weight_decay)
            # `kernel` of Dense and Conv is a property (merged with LoRA);
            # `_kernel` is their variable.
            kernel = getattr(layer, "_kernel", None)
            kernel = layer.kernel if kernel is None else kernel
            kernel.regularizer = layer.kernel_regularizer
