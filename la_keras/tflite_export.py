"""Export a trained classifier as a TensorFlow Lite flat buffer.

The converted model computes what the SavedModel of `la_keras.serving`
serves: the evaluation preprocessing, the network and the post-hoc
adjustment (`serving.serving_classifier`), on a batch of uint8 images of
exactly the run's image shape `[batch, H, W, C]`. It returns `logits`
(adjusted, float32 `[batch, num_classes]`) and `classes` (their argmax,
int32 `[batch]`). Only TFLite builtin ops are used, so it runs in any
`tf.lite.Interpreter` or on-device TFLite runtime without the Flex delegate.

Against the SavedModel:

- A folder dataset resized to `image_size` is served at that size only: the
  caller resizes (the SavedModel resizes requests of any size with an
  antialiased bilinear resize, an op TFLite lacks). So is a run with the
  "imagenet" preprocessing, whose SavedModel takes any size.
- The converted model does not check its input: `TFLiteClassifier`
  (`la_keras.tflite_classifier`) checks each request's dtype and shape
  against `model.tflite.json`, the metadata written beside the model.

Quantization: `"none"` (float32), `"dynamic"` (weights stored as int8,
dequantized or computed in int8 at run time) or `"int8"` (weights and
activations in int8, calibrated on representative images; the input stays
uint8 and the logits float32).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from la_keras import serving
from la_keras.datasets import preprocess_images

QUANTIZATIONS = ("none", "dynamic", "int8")
# The file beside `model.tflite` with its class names and image shape.
METADATA_SUFFIX = ".json"


class _Classify(tf.Module):
    """The converted computation: preprocess, classify, adjust, argmax."""

    def __init__(self, classifier, preprocessing, image_shape):
        super().__init__(name="la_keras_tflite")
        self.classifier = classifier
        self.preprocessing = preprocessing
        self.image_shape = tuple(int(d) for d in image_shape)

    def __call__(self, images):
        # Float before the "imagenet" resize: TFLite's RESIZE_BILINEAR keeps
        # its input's dtype, TensorFlow's turns uint8 into float32 (the
        # same values).
        inputs = preprocess_images(
            tf.cast(images, tf.float32),
            self.preprocessing,
            training=False,
            image_size=self.image_shape[:2],
        )
        raw = tf.cast(self.classifier.model(inputs, training=False), tf.float32)
        logits = tf.cast(self.classifier.adjustment(raw), tf.float32)
        classes = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return {"logits": logits, "classes": classes}


def check_quantize(quantize: str) -> str:
    """Validates `quantize`; returns it."""
    if quantize not in QUANTIZATIONS:
        raise ValueError(
            "Invalid value for argument `quantize`. Expected one of "
            f"{', '.join(repr(q) for q in QUANTIZATIONS)}. Received: "
            f"quantize={quantize!r}"
        )
    return quantize


def tflite_model(
    model,
    image_shape,
    preprocessing: str,
    priors=None,
    tau: float = 0.0,
    *,
    quantize: str = "none",
    representative_images=None,
) -> bytes:
    """Converts `model` behind preprocessing and adjustment to TFLite.

    Args:
        model: a Keras model mapping preprocessed float images to logits.
        image_shape: `(H, W, C)` of the uint8 images the model takes (for a
            folder dataset resized to `image_size`, the resized shape).
        preprocessing: "cifar" or "imagenet", see `preprocess_images`.
        priors: class priors or counts for post-hoc adjustment, or None.
        tau: adjustment temperature, as `serving.export_saved_model`.
        quantize: "none", "dynamic" or "int8".
        representative_images: uint8 images `[N, H, W, C]` of the training
            split, which calibrate the activations' ranges; required for
            "int8" only.

    Returns:
        The TFLite flat buffer.
    """
    check_quantize(quantize)
    image_shape = tuple(int(d) for d in image_shape)
    if quantize == "int8":
        representative_images = _check_representative(
            representative_images, image_shape
        )
    module = _Classify(
        serving.serving_classifier(model, priors, tau),
        preprocessing,
        image_shape,
    )
    spec = tf.TensorSpec([None, *image_shape], tf.uint8, "images")
    function = tf.function(module.__call__, input_signature=[spec])
    concrete = function.get_concrete_function()
    # The `tf.Variable`s the graph reads (a Keras 3 variable wraps one),
    # tracked by the module so that the converter freezes them.
    module.graph_variables = list(concrete.variables)
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [concrete], module
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize != "none":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if quantize == "int8":
        converter.representative_dataset = _representative(
            representative_images
        )
        converter.target_spec.supported_ops = [
            tf.lite.OpsSet.TFLITE_BUILTINS_INT8
        ]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32
    return converter.convert()


def _check_representative(images, image_shape):
    if images is None or len(images) == 0:
        raise ValueError(
            "Invalid value for argument `representative_images`. Expected "
            "uint8 training images of shape [N, H, W, C] with N >= 1 for "
            "quantize='int8'. Received: representative_images="
            f"{None if images is None else 'an empty array'}"
        )
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.shape[1:] != image_shape:
        raise ValueError(
            "Invalid value for argument `representative_images`. Expected "
            f"uint8 images of shape [N, {', '.join(map(str, image_shape))}]. "
            f"Received: dtype {images.dtype} and shape {images.shape}"
        )
    return images


def _representative(images):
    def generate():
        for image in images:
            yield [image[np.newaxis]]

    return generate


def metadata(
    image_shape,
    class_names=None,
    *,
    priors=None,
    tau: float = 0.0,
    quantize: str = "none",
    resize=None,
) -> dict:
    """What `TFLiteClassifier` reads beside the model (`model.tflite.json`).

    Args:
        image_shape: `(H, W, C)` of the model's uint8 input.
        class_names: one name per class, or None (the names are the indices).
        priors: the priors of the served adjustment, or None.
        tau: the served tau (0 without priors).
        quantize: how the model was quantized.
        resize: `(H, W)` a folder dataset's images were resized to in
            training (requests must come at that size), or None.
    """
    return {
        "image_shape": [int(d) for d in image_shape],
        "input_dtype": "uint8",
        "class_names": None if class_names is None else list(class_names),
        "priors": None
        if priors is None
        else [float(p) for p in np.asarray(priors, np.float64)],
        "tau": float(tau or 0.0) if priors is not None else 0.0,
        "quantize": check_quantize(quantize),
        "resize": None if resize is None else [int(d) for d in resize],
    }
