"""Export a trained classifier as a SavedModel for serving.

The `serving_default` signature takes a batch of uint8 images named
`images`, preprocesses them as the evaluation pipeline does
(`la_keras.datasets.preprocess_images`), runs the model and, for post-hoc
logit adjustment, subtracts `log(priors**tau + epsilon)`. It returns
`logits`, `probabilities` (softmax of the logits) and `classes` (argmax).
The SavedModel also carries `adjustment` and `tau` variables, so the raw
logits are `logits + adjustment`.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from la_keras.datasets import preprocess_images
from la_keras.adjustment import log_adjustment

SIGNATURE = "serving_default"


class _ServingModule(tf.Module):
    def __init__(self, model, preprocessing, adjustment, tau):
        super().__init__(name="la_keras_serving")
        self.model = model
        self.preprocessing = preprocessing
        self.adjustment = tf.Variable(
            adjustment, trainable=False, name="adjustment"
        )
        self.tau = tf.Variable(
            tau, dtype=tf.float32, trainable=False, name="tau"
        )

    def serve(self, images):
        inputs = preprocess_images(images, self.preprocessing, training=False)
        logits = self.model(inputs, training=False)
        logits = tf.cast(logits, tf.float32) - self.adjustment
        return {
            "logits": logits,
            "probabilities": tf.nn.softmax(logits, axis=-1),
            "classes": tf.argmax(logits, axis=-1),
        }


def export_saved_model(
    model,
    export_dir: str,
    image_shape,
    preprocessing: str,
    priors=None,
    tau: float = 0.0,
    epsilon: float = 1e-12,
) -> str:
    """Writes `model` as a SavedModel with a uint8-image serving signature.

    Args:
        model: a Keras model mapping preprocessed float images to logits.
        export_dir: directory to write (overwritten).
        image_shape: `(H, W, C)` of the raw images; for "imagenet"
            preprocessing (which resizes) only C is fixed.
        preprocessing: "cifar" or "imagenet", see `preprocess_images`.
        priors: class priors or counts for post-hoc adjustment, or None.
        tau: adjustment temperature; the served logits are
            `logits - log(priors**tau + epsilon)`. Ignored without priors.
        epsilon: as in `log_adjustment`.

    Returns:
        `export_dir`.
    """
    num_classes = int(model.output_shape[-1])
    if priors is None:
        adjustment = np.zeros([num_classes], np.float32)
        tau = 0.0
    else:
        adjustment = log_adjustment(priors, tau, epsilon)
        if adjustment.shape[0] != num_classes:
            raise ValueError(
                f"Invalid value for argument `priors`: {adjustment.shape[0]} "
                f"classes, but the model has {num_classes} outputs."
            )
    height, width, channels = (int(d) for d in image_shape)
    if preprocessing == "cifar":
        spec = tf.TensorSpec(
            [None, height, width, channels], tf.uint8, "images"
        )
    else:
        spec = tf.TensorSpec([None, None, None, channels], tf.uint8, "images")
    module = _ServingModule(model, preprocessing, adjustment, float(tau))
    serve = tf.function(module.serve, input_signature=[spec])
    tf.saved_model.save(module, export_dir, signatures={SIGNATURE: serve})
    return export_dir
