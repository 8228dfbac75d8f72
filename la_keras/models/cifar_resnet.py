"""CIFAR ResNet-32: the official release's variant and the classic one.

`official_resnet32` is the network of the official release
(google-research `logit_adjustment/models.py`), layer for layer: it is the
ResNet-50 bottleneck block (1x1 - 3x3 - 1x1) with all three convolutions of
the same width (16 / 32 / 64), five blocks per stage, a projection shortcut
at the start of every stage, a zero-padded 3x3 valid stem, a final batch norm
before global average pooling and L2 weight decay on every kernel and on the
dense bias. Its layer names are the official ones, so weights map one to one.

`resnet32` is the classic CIFAR ResNet-32 of He et al. (2016): basic blocks
of two 3x3 convolutions, 3 stages x 5 blocks, 1x1 projection shortcuts where
the shape changes. `cifar_resnet(depth)` builds the other depths of that
family (6n + 2: 8, 20, 32, 56, 110); ResNet-8 is the quick smoke-test net.
"""

from __future__ import annotations

import keras
from keras import layers

from la_keras.models.heads import logits_layer

BATCH_NORM_MOMENTUM = 0.9
BATCH_NORM_EPSILON = 1e-5
WEIGHT_DECAY = 1e-4

# (blocks, filters, stride) per stage; 3 stages x 5 blocks.
RESNET32_STAGES = ((5, 16, 1), (5, 32, 2), (5, 64, 2))


def _l2(weight_decay):
    return keras.regularizers.L2(weight_decay) if weight_decay else None


def _batch_norm(name):
    return layers.BatchNormalization(
        axis=-1,
        momentum=BATCH_NORM_MOMENTUM,
        epsilon=BATCH_NORM_EPSILON,
        name=name,
    )


def _conv(filters, kernel_size, weight_decay, name, strides=1, padding="same"):
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=_l2(weight_decay),
        name=name,
    )


def _official_block(
    x, filters, stage, block, strides, projection, weight_decay
):
    """Bottleneck-shaped block of the official release (equal widths)."""
    conv_base = f"res{stage}{block}_branch"
    bn_base = f"bn{stage}{block}_branch"
    shortcut = x
    y = _conv(filters, 1, weight_decay, conv_base + "2a")(x)
    y = _batch_norm(bn_base + "2a")(y)
    y = layers.Activation("relu")(y)
    y = _conv(filters, 3, weight_decay, conv_base + "2b", strides=strides)(y)
    y = _batch_norm(bn_base + "2b")(y)
    y = layers.Activation("relu")(y)
    y = _conv(filters, 1, weight_decay, conv_base + "2c")(y)
    y = _batch_norm(bn_base + "2c")(y)
    if projection:
        shortcut = _conv(
            filters, 1, weight_decay, conv_base + "1", strides=strides
        )(x)
        shortcut = _batch_norm(bn_base + "1")(shortcut)
    y = layers.Add()([y, shortcut])
    return layers.Activation("relu")(y)


def _classifier(x, num_classes, weight_decay, name, classifier):
    x = layers.GlobalAveragePooling2D(name="reduce_mean")(x)
    return logits_layer(
        num_classes,
        classifier,
        name=name,
        kernel_regularizer=_l2(weight_decay),
        bias_regularizer=_l2(weight_decay),
    )(x)


def _check(num_classes, input_shape):
    if int(num_classes) < 1:
        raise ValueError(
            "Invalid value for argument `num_classes`. Expected an integer "
            f">= 1. Received: num_classes={num_classes}"
        )
    if len(input_shape) != 3:
        raise ValueError(
            "Invalid value for argument `input_shape`. Expected (H, W, C). "
            f"Received: input_shape={input_shape}"
        )


def official_resnet32(
    num_classes: int,
    input_shape: tuple[int, int, int] = (32, 32, 3),
    weight_decay: float = WEIGHT_DECAY,
    name: str = "resnet",
    classifier: str = "dense",
) -> keras.Model:
    """The official release's CIFAR ResNet-32 (logits output).

    Args:
        num_classes: number of output logits.
        input_shape: `(H, W, C)` of the preprocessed images.
        weight_decay: L2 factor on all kernels and the dense bias (the
            official 1e-4); 0 disables it.
        name: model name.
        classifier: the head, "dense" (the official one) or "normed" (a
            cosine classifier, `NormedDense`, as LDAM uses).

    Returns:
        A functional `keras.Model` mapping float images to logits.
    """
    _check(num_classes, input_shape)
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = layers.ZeroPadding2D(padding=(3, 3), name="conv1_pad")(inputs)
    x = _conv(16, 3, weight_decay, "conv1", padding="valid")(x)
    x = _batch_norm("bn_conv1")(x)
    x = layers.Activation("relu")(x)
    for stage, (blocks, filters, stride) in enumerate(RESNET32_STAGES):
        for i in range(blocks):
            x = _official_block(
                x,
                filters,
                stage=stage + 2,
                block="abcdefghijklm"[i],
                strides=stride if i == 0 else 1,
                projection=i == 0,
                weight_decay=weight_decay,
            )
    x = _batch_norm("final_bn")(x)
    outputs = _classifier(x, num_classes, weight_decay, "fc10", classifier)
    return keras.Model(inputs, outputs, name=name)


def _basic_block(x, filters, strides, name, weight_decay):
    shortcut = x
    y = _conv(filters, 3, weight_decay, name + "_conv1", strides=strides)(x)
    y = _batch_norm(name + "_bn1")(y)
    y = layers.Activation("relu")(y)
    y = _conv(filters, 3, weight_decay, name + "_conv2")(y)
    y = _batch_norm(name + "_bn2")(y)
    if strides != 1 or x.shape[-1] != filters:
        shortcut = _conv(
            filters, 1, weight_decay, name + "_proj", strides=strides
        )(x)
        shortcut = _batch_norm(name + "_proj_bn")(shortcut)
    y = layers.Add()([y, shortcut])
    return layers.Activation("relu")(y)


def cifar_resnet(
    depth: int,
    num_classes: int,
    input_shape: tuple[int, int, int] = (32, 32, 3),
    weight_decay: float = WEIGHT_DECAY,
    name: str | None = None,
    classifier: str = "dense",
) -> keras.Model:
    """Classic CIFAR ResNet of He et al. (2016) with basic blocks.

    A 3x3 stem with 16 filters, three stages of `(depth - 2) / 6` basic
    blocks (two 3x3 convolutions each) with 16 / 32 / 64 filters and strides
    1 / 2 / 2, global average pooling and a dense classifier, with 1x1
    projection shortcuts where the shape changes.

    Args:
        depth: 6n + 2 layers: 8, 20, 32, 44, 56, 110, ...
        num_classes: number of output logits.
        input_shape: `(H, W, C)` of the preprocessed images.
        weight_decay: L2 factor on all kernels and the dense bias.
        name: model name, default `resnet<depth>`.
        classifier: the head, "dense" or "normed" (cosine, `NormedDense`).

    References:
        - [He et al., 2016](https://arxiv.org/abs/1512.03385)
    """
    if depth < 8 or (depth - 2) % 6:
        raise ValueError(
            "Invalid value for argument `depth`. Expected 6n + 2 with n >= 1 "
            f"(8, 20, 32, 56, ...). Received: depth={depth}"
        )
    _check(num_classes, input_shape)
    blocks = (depth - 2) // 6
    inputs = keras.Input(shape=tuple(input_shape), name="images")
    x = _conv(16, 3, weight_decay, "conv1")(inputs)
    x = _batch_norm("bn_conv1")(x)
    x = layers.Activation("relu")(x)
    for stage, (_, filters, stride) in enumerate(RESNET32_STAGES):
        for i in range(blocks):
            x = _basic_block(
                x,
                filters,
                strides=stride if i == 0 else 1,
                name=f"stage{stage + 1}_block{i + 1}",
                weight_decay=weight_decay,
            )
    outputs = _classifier(x, num_classes, weight_decay, "logits", classifier)
    return keras.Model(inputs, outputs, name=name or f"resnet{depth}")


def resnet32(
    num_classes: int,
    input_shape: tuple[int, int, int] = (32, 32, 3),
    weight_decay: float = WEIGHT_DECAY,
    name: str = "resnet32",
    classifier: str = "dense",
) -> keras.Model:
    """Classic CIFAR ResNet-32 (He et al., 2016): `cifar_resnet(32, ...)`.

    31 convolutions in 3 stages x 5 basic blocks plus a dense layer.
    """
    return cifar_resnet(
        32, num_classes, input_shape, weight_decay, name, classifier
    )
