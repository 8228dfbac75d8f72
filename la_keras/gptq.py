"""Rounding a convolution's kernel to int8 with the error fed forward (GPTQ).

Rounding each weight to its nearest level ignores what the layer's inputs
do with the errors. GPTQ (Frantar et al., "GPTQ: Accurate Post-Training
Quantization for Generative Pre-trained Transformers", ICLR 2023, Algorithm
1; from Optimal Brain Quantization) rounds one input position at a time and
moves the weights not yet rounded to make up for the error, by the inverse
of `H = X X^T`, the second moment of the layer's inputs `X`:

```python
H = X @ X.T + damp * mean(diag(H)) * I     # X: [d, samples]
U = cholesky(inverse(H)).T                 # upper triangular
for i in range(d):                         # largest diag(H) first
    q[:, i] = round_to_grid(w[:, i])
    error = (w[:, i] - q[:, i]) / U[i, i]
    w[:, i + 1:] -= outer(error, U[i, i + 1:])
```

Each row (an output channel) keeps the grid of its largest weight before
rounding, `scale = max|w| / 127`, clipped to +-127 levels. A row whose
largest level then ends below 127 is rounded once more to the grid of its
new largest weight, the one the TFLite converter will find, so that the
converter keeps every level.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

LEVELS = 127
DAMPING = 0.01


def round_rows(weights, second_moment):
    """`weights` `[rows, d]` rounded by GPTQ against `second_moment` `[d, d]`.

    Both float64. Returns the rounded weights, each row on the symmetric
    int8 grid of its own largest weight.
    """
    weights = np.array(weights, np.float64)
    hessian = np.array(second_moment, np.float64)
    dead = np.diag(hessian) == 0
    hessian[dead, dead] = 1.0
    d = hessian.shape[0]
    hessian += DAMPING * np.mean(np.diag(hessian)) * np.eye(d)
    weights[:, dead] = 0.0
    largest = np.max(np.abs(weights), axis=1)
    step = np.where(largest > 0, largest / LEVELS, 1.0)
    order = np.argsort(-np.diag(hessian), kind="stable")
    weights = weights[:, order]
    hessian = hessian[order][:, order]
    upper = np.linalg.cholesky(np.linalg.inv(hessian)).T
    rounded = np.zeros_like(weights)
    for i in range(d):
        column = weights[:, i]
        levels = np.clip(np.round(column / step), -LEVELS, LEVELS)
        rounded[:, i] = levels * step
        error = (column - rounded[:, i]) / upper[i, i]
        weights[:, i + 1 :] -= np.outer(error, upper[i, i + 1 :])
    result = np.empty_like(rounded)
    result[:, order] = rounded
    return _snapped(result)


def _snapped(rounded):
    largest = np.max(np.abs(rounded), axis=1, keepdims=True)
    step = np.where(largest > 0, largest / LEVELS, 1.0)
    return np.round(rounded / step) * step


def second_moment(convolution, inputs, batch_size=25):
    """`X X^T` of the input patches of `convolution`, summed over `inputs`
    `[N, H, W, in]`: a `Conv2D`'s is `[kh * kw * in] ** 2`; a
    `DepthwiseConv2D`'s, per input channel, `[in, kh * kw, kh * kw]`.
    """
    depthwise = isinstance(convolution, keras.layers.DepthwiseConv2D)
    taps = int(np.prod(convolution.kernel_size))
    total = 0.0
    for start in range(0, len(inputs), batch_size):
        patches = _patches(convolution, inputs[start : start + batch_size])
        if depthwise:
            patches = patches.reshape(-1, taps, inputs.shape[-1])
            total = total + np.einsum("mkc,mlc->ckl", patches, patches)
        else:
            patches = patches.reshape(-1, patches.shape[-1])
            total = total + patches.T @ patches
    return total


def _patches(convolution, inputs):
    """Input patches `[..., kh * kw * in]`, in a kernel's `(kh, kw, in)`
    order, in float64."""
    patches = tf.image.extract_patches(
        tf.constant(inputs, tf.float32),
        sizes=[1, *convolution.kernel_size, 1],
        strides=[1, *convolution.strides, 1],
        rates=[1, *convolution.dilation_rate, 1],
        padding=convolution.padding.upper(),
    )
    return np.asarray(patches, np.float64)
