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


def logits_layer(num_classes: int, classifier: str, name: str = "logits"):
    """The head: a Dense layer (N(0, 0.01) kernel) or a `NormedDense`."""
    if check_classifier(classifier) == "normed":
        return NormedDense(num_classes, name=name)
    return layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.RandomNormal(stddev=0.01),
        name=name,
    )


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
