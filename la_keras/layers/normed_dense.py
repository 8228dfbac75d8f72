"""The cosine classifier of LDAM: `NormedDense`."""

from __future__ import annotations

import keras
from keras import layers
from keras import ops
from keras.saving import register_keras_serializable

# PyTorch's `F.normalize` default: `x / max(||x||, eps)`.
NORM_EPSILON = 1e-12


def _l2_normalize(x, axis):
    norm = ops.sqrt(ops.sum(ops.square(x), axis=axis, keepdims=True))
    return x / ops.maximum(norm, NORM_EPSILON)


@register_keras_serializable(package="la_keras")
class NormedDense(layers.Layer):
    """Cosine classifier: the logits are cosines of features and class weights.

    The normalised linear head (`NormedLinear`) that Cao et al. use with the
    LDAM loss: each feature vector and each class's weight column are scaled
    to unit length before their product, so every logit lies in `[-1, 1]`
    and the loss's scale `s` (30 in LDAM) sets the softmax temperature. It
    has no bias.

    Formula:

    ```python
    logits = (x / ||x||) @ (W / ||W[:, y]||)   # column y: class y
    ```

    where `||v||` is `max(sqrt(sum(v**2)), 1e-12)`, as PyTorch's
    `F.normalize`.

    Args:
        units: the number of classes (output logits).
        scale: the fixed factor of the cosines (default 1: the logits are
            the cosines, and the loss scales them, as LDAM's `s`).
        kernel_initializer: initializer of the `[D, units]` kernel (only its
            columns' directions matter).
        kernel_regularizer: optional regularizer of the kernel (the weight
            decay Cao et al. apply to every parameter).
        **kwargs: base layer arguments (`name`, `dtype`, ...).

    Example:

    ```python
    features = keras.Input((64,))
    cosines = la_keras.layers.NormedDense(10)(features)
    model = keras.Model(features, cosines)
    ```

    References:
        - [Cao et al., 2019](https://arxiv.org/abs/1906.07413), and their
          LDAM-DRW code (`models/resnet_cifar.py`, `NormedLinear`).
        - [Shi et al., 2024](https://arxiv.org/abs/2309.14496) (LIFT), and
          their `CosineClassifier` (`shijxcs/LIFT`, `models/classifiers.py`).
    """

    def __init__(
        self,
        units,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        scale=1.0,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(units, int) or isinstance(units, bool) or units < 1:
            raise ValueError(
                "Invalid value for argument `units`. Expected an integer "
                f">= 1. Received: units={units!r}"
            )
        scale = float(scale)
        if not scale > 0 or scale == float("inf"):
            raise ValueError(
                "Invalid value for argument `scale`. Expected a finite number "
                f"> 0. Received: scale={scale!r}"
            )
        self.units = units
        self.scale = scale
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            name="kernel",
            shape=(int(input_shape[-1]), self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
        )

    def call(self, inputs):
        features = _l2_normalize(inputs, axis=-1)
        kernel = _l2_normalize(ops.cast(self.kernel, inputs.dtype), axis=0)
        cosines = ops.matmul(features, kernel)
        return cosines if self.scale == 1.0 else cosines * self.scale

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "scale": self.scale,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
            }
        )
        return config
