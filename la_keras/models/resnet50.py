"""ResNet-50 for ImageNet-LT and iNaturalist 2018."""

from __future__ import annotations

import keras
from keras import layers

from la_keras.models.heads import add_weight_decay
from la_keras.models.heads import logits_layer

WEIGHT_DECAY = 5e-4


def resnet50(
    num_classes: int,
    input_shape: tuple[int, int, int] = (224, 224, 3),
    weight_decay: float = WEIGHT_DECAY,
    name: str = "resnet50",
    classifier: str = "dense",
) -> keras.Model:
    """ResNet-50 (`keras.applications`, random init) with a logits head.

    The backbone is `keras.applications.ResNet50(weights=None,
    include_top=False)`; the head is global average pooling and a dense
    layer without activation. `weight_decay` adds an L2 penalty on every
    convolution and dense kernel (the long-tail literature uses 5e-4 on
    ImageNet-LT); 0 disables it.

    Args:
        num_classes: number of output logits.
        input_shape: `(H, W, C)` of the preprocessed images.
        weight_decay: L2 factor on the kernels.
        name: model name.
        classifier: the head, "dense" or "normed" (cosine, `NormedDense`).
    """
    if int(num_classes) < 1:
        raise ValueError(
            "Invalid value for argument `num_classes`. Expected an integer "
            f">= 1. Received: num_classes={num_classes}"
        )
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    backbone = keras.applications.ResNet50(
        weights=None, include_top=False, input_tensor=inputs
    )
    x = layers.GlobalAveragePooling2D(name="avg_pool")(backbone.output)
    outputs = logits_layer(num_classes, classifier)(x)
    model = keras.Model(inputs, outputs, name=name)
    add_weight_decay(model, weight_decay)
    return model
