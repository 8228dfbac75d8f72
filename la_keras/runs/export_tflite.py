"""`export(format="tflite")`: the run as a TFLite model.

Writes `model.tflite` (`la_keras.tflite_export`) and its metadata
`model.tflite.json` (image shape, class names, priors, tau, target prior), each
atomically, for `la_keras.tflite_classifier.TFLiteClassifier`. The "int8"
quantization is calibrated on the first `--representative_images` images of
the run's training split, read by the run's own dataset pipeline (a folder
dataset's images resized to its `image_size`).
"""

from __future__ import annotations

import numpy as np
from absl import logging

from la_keras import tflite_export
from la_keras.models import finetune
from la_keras.runs import outputs
from la_keras.runs import reporting

MODEL_FILE = "model.tflite"


def representative_images(config, count: int) -> np.ndarray:
    """The first `count` uint8 images of the run's training split."""
    dataset, _ = config.data.load("train")
    images = [image.numpy() for image, _ in dataset.take(count)]
    return np.stack(images).astype(np.uint8)


def write(
    config, state, tau, path: str, quantize: str, count: int, target=None
) -> str:
    """Converts the restored `state` of the run `config`; returns `path`.

    `target` is the class mix the logits serve (`la_keras.runs.target_prior`), or
    None for the uniform one, by the SavedModel's rule
    (`reporting.serving_rule`).
    """
    info = state.info
    priors = None if tau is None else info.priors
    images = None
    if quantize == "int8":
        images = representative_images(config, count)
        logging.info("Calibrating int8 on %d training images.", len(images))
    content = tflite_export.tflite_model(
        finetune.merged(state.model),
        info.image_shape,
        info.preprocessing,
        priors,
        tau or 0.0,
        quantize=quantize,
        representative_images=images,
        resize=info.resize,
        target_prior=target,
        **reporting.serving_rule(config, info, tau),
    )
    metadata = tflite_export.metadata(
        info.image_shape,
        info.class_names,
        priors=priors,
        tau=tau or 0.0,
        quantize=quantize,
        resize=info.resize,
        target_prior=target,
    )
    # The metadata first: a kill between the two leaves an older model
    # beside newer metadata of the same run, never a model without any.
    outputs.write_json(path + tflite_export.METADATA_SUFFIX, metadata)
    outputs.write_bytes(path, content)
    return path
