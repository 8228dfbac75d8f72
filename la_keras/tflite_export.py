"""Export a trained classifier as a TensorFlow Lite flat buffer.

The converted model computes what the SavedModel of `la_keras.serving`
serves in `serving_default`: the evaluation preprocessing, the network and
the adjustment (`serving.serving_classifier`, or the baked-in target prior
by `serving.retarget_terms`' rule), on a batch of uint8 images
`[batch, H, W, C]`. It returns `logits` (adjusted, float32
`[batch, num_classes]`) and `classes` (their argmax, int32 `[batch]`). Only
TFLite builtin ops are used, so it runs in any `tf.lite.Interpreter` or
on-device TFLite runtime without the Flex delegate.

Against the SavedModel:

- A folder dataset resized to `image_size` takes images of any size, as the
  SavedModel does, but resizes them with TFLite's RESIZE_BILINEAR, without
  the antialiasing of `la_keras.datasets.preprocessing.resize_images` (an
  op TFLite lacks). Images already at `image_size` pass through unchanged.
  A run with the "imagenet" preprocessing (whose SavedModel takes any size)
  takes images of its image shape only.
- The converted model does not check its input: `TFLiteClassifier`
  (`la_keras.tflite_classifier`) checks each request's dtype and shape
  against the model's input signature.

Quantization: `"none"` (float32), `"dynamic"` (weights stored as int8,
dequantized or computed in int8 at run time) or `"int8"` (weights and
activations in int8, calibrated on representative images; the input stays
uint8 and the logits float32). For "int8", the convolutions are first
rounded (GPTQ) and bias-corrected on the representative images
(`la_keras.quantization`), and two ends of the network stay float32: the
stem (the ops up to the third convolution, at the highest resolution and
with the fewest weights) and the head (from the last fully connected op
on: the classifier, whose logits would be rounded to 256 levels, and the
adjustment).
"""

from __future__ import annotations

import csv
import io

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from la_keras import priors as priors_lib
from la_keras import quantization
from la_keras import serving
from la_keras import serving_signature
from la_keras.datasets import arguments
from la_keras.datasets import preprocess_images
from la_keras.datasets.preprocessing import evaluation_pixels
from la_keras.layers.backbone_input import BackboneInput

QUANTIZATIONS = ("none", "dynamic", "int8")
# The convolutions (and the ops before them) an int8 model keeps in float32.
FLOAT_STEM_CONVOLUTIONS = 3
_CONVOLUTION_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D")
# The file beside `model.tflite` with its class names and image shape.
METADATA_SUFFIX = ".json"


class _Classify(tf.Module):
    """The converted computation: resize, preprocess, classify, adjust."""

    def __init__(self, classifier, preprocessing, image_shape, resize, terms):
        super().__init__(name="la_keras_tflite")
        self.classifier = classifier
        self.preprocessing = preprocessing
        self.image_shape = tuple(int(d) for d in image_shape)
        self.resize = None if resize is None else [int(d) for d in resize]
        self.train_log, self.target_prior = terms
        self.pixel_model = pixel_model(classifier.model)

    def input_spec(self) -> tf.TensorSpec:
        shape = [None, *self.image_shape]
        if self.resize is not None:
            shape[1:3] = [None, None]
        return tf.TensorSpec(shape, tf.uint8, "images")

    def __call__(self, images):
        return self._outputs(images, self.target_prior)

    def _outputs(self, images, prior):
        # Float before any resize: TFLite's RESIZE_BILINEAR keeps its
        # input's dtype, TensorFlow's turns uint8 into float32 (the same
        # values).
        images = tf.cast(images, tf.float32)
        if self.resize is not None:
            # `resize_images` without the antialiasing (`ScaleAndTranslate`,
            # which TFLite lacks): RESIZE_BILINEAR. Not rounded to whole
            # pixels: a value near x.5 would round either way in TFLite
            # and TensorFlow, a difference of one grey level.
            images = tf.image.resize(
                images, self.resize, method="bilinear", antialias=False
            )
        size = self.image_shape[:2]
        if self.pixel_model is not None:
            pixels = evaluation_pixels(images, self.preprocessing, size)
            raw = self.pixel_model(pixels, training=False)
        else:
            inputs = preprocess_images(
                images, self.preprocessing, training=False, image_size=size
            )
            raw = self.classifier.model(inputs, training=False)
        raw = tf.cast(raw, tf.float32)
        logits = serving_signature.served_logits(
            self.classifier, raw, self.train_log, prior
        )
        classes = tf.argmax(logits, axis=-1, output_type=tf.int32)
        return {"logits": logits, "classes": classes}


def pixel_model(model):
    """`model` taking `[0, 255]` pixels, when it undoes the recipe's
    normalisation first (`BackboneInput`); else None.

    The recipe's normalisation and the `BackboneInput` that undoes it are
    the identity together; in int8 the normalised tensor (e.g. [-0.5, 0.5]
    for "cifar"), between two tensors of range [0, 255], was quantized at
    the pixels' scale (one level) and every image came out the same. The model
    returned shares `model`'s layers and weights, its `BackboneInput`
    replaced by one whose inverse normalisation is the identity.
    """
    if not any(isinstance(layer, BackboneInput) for layer in model.layers):
        return None

    def identity_input(layer):
        if not isinstance(layer, BackboneInput):
            return layer
        channels = len(layer.input_scale)
        return BackboneInput(
            [1.0] * channels, [0.0] * channels, layer.size, layer.mode
        )

    return keras.models.clone_model(model, clone_function=identity_input)


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
    resize=None,
    mode: str = "posthoc",
    train_prior=None,
    prior_tau: float | None = None,
    target_prior=None,
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
        resize: `(H, W)` of a folder dataset resized to `image_size`
            (`DatasetInfo.resize`), or None. The model then takes images of
            any height and width and resizes them to it (bilinear, without
            antialiasing); `image_shape` is the resized shape.
        mode, train_prior, prior_tau, target_prior: the class mix the logits
            serve, as `serving.export_saved_model`'s `serving_default`.

    Returns:
        The TFLite flat buffer.
    """
    check_quantize(quantize)
    image_shape = tuple(int(d) for d in image_shape)
    if quantize == "int8":
        representative_images = _check_representative(
            representative_images, image_shape
        )
        model = _bias_corrected(
            model, representative_images, preprocessing, image_shape
        )
    classifier = serving.serving_classifier(model, priors, tau)
    terms = serving.retarget_terms(
        classifier, mode, train_prior, prior_tau, target_prior
    )
    module = _Classify(classifier, preprocessing, image_shape, resize, terms)
    function = tf.function(
        module.__call__, input_signature=[module.input_spec()]
    )
    concrete = function.get_concrete_function()
    # The `tf.Variable`s the graph reads (a Keras 3 variable wraps one),
    # tracked by the module so that the converter freezes them.
    module.graph_variables = list(concrete.variables)

    def converter():
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
        return converter

    if quantize == "int8":
        return _int8_with_float_ends(converter, representative_images)
    return converter().convert()


def _bias_corrected(model, images, preprocessing, image_shape):
    """`model` rounded and bias-corrected on the representative images."""
    inputs = preprocess_images(
        tf.cast(images, tf.float32),
        preprocessing,
        training=False,
        image_size=image_shape[:2],
    )
    model, corrected = quantization.int8_bias_corrected(
        model, np.asarray(inputs), FLOAT_STEM_CONVOLUTIONS
    )
    logging.info("int8: %d convolutions bias-corrected.", corrected)
    return model


def _int8_with_float_ends(converter, images):
    """The int8 flat buffer, its stem (the ops up to the stem's last
    convolution) and head (from the last fully connected op on) in float32,
    by TFLite's quantization debugger's deny list."""
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter(), debug_dataset=_representative(images[:1])
    )
    debugger.run()
    table = io.StringIO()
    debugger.layer_statistics_dump(table)
    table.seek(0)
    names, convolutions, dense = [], [], []
    for row in csv.DictReader(table):
        names.append(row["tensor_name"])
        if row["op_name"] in _CONVOLUTION_OPS:
            convolutions.append(len(names))
        elif row["op_name"] == "FULLY_CONNECTED":
            dense.append(len(names) - 1)
    # As `quantization.int8_bias_corrected`: no float stem in a model with
    # no more convolutions than the stem's.
    stem = []
    if len(convolutions) > FLOAT_STEM_CONVOLUTIONS:
        stem = names[: convolutions[FLOAT_STEM_CONVOLUTIONS - 1]]
    # The head: the classifier and the adjustment after it.
    head = names[dense[-1] :] if dense else []
    if not stem and not head:
        return converter().convert()
    options = tf.lite.experimental.QuantizationDebugOptions(
        denylisted_nodes=stem + head
    )
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter(),
        debug_dataset=_representative(images[:1]),
        debug_options=options,
    )
    # The model as the converter quantizes it, without the debugger's ops.
    return debugger.get_nondebug_quantized_model()


def _check_representative(images, image_shape):
    if images is None or len(images) == 0:
        raise ValueError(
            "Invalid value for argument `representative_images`. Expected "
            "uint8 training images of shape [N, H, W, C] with N >= 1 for "
            "quantize='int8'. Received: representative_images="
            f"{None if images is None else 'an empty array'}"
        )
    return arguments.uint8_images(images, image_shape, "representative_images")


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
    target_prior=None,
) -> dict:
    """What `TFLiteClassifier` reads beside the model (`model.tflite.json`).

    Args:
        image_shape: `(H, W, C)` of the model's uint8 input.
        class_names: one name per class, or None (the names are the indices).
        priors: the priors of the served adjustment, or None.
        tau: the served tau (0 without priors).
        quantize: how the model was quantized.
        resize: `(H, W)` a folder dataset's images were resized to in
            training (the model resizes requests to it), or None.
        target_prior: the class mix baked into the logits (normalized), or
            None for the uniform one.
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
        "target_prior": None
        if target_prior is None
        else [float(p) for p in priors_lib.normalize(target_prior)],
    }
