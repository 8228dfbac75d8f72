"""Run a classifier exported by `la_keras.tflite_export` in TFLite."""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

from la_keras.tflite_export import METADATA_SUFFIX


class TFLiteClassifier:
    """A `model.tflite` and its metadata (`model.tflite.json`, beside it).

    The converted model does not check its input; this class refuses, with a
    one-line `ValueError`, a request the SavedModel would refuse: another
    dtype than uint8, another rank than 4, another channel count than the
    model's or, unless the model resizes its input (a folder run's
    `image_size`), another height or width.

    Args:
        path: the `.tflite` file; its metadata is read from
            `path + ".json"`.
        num_threads: the interpreter's CPU threads, or None (its default).

    Example:

    >>> classifier = TFLiteClassifier("runs/mine/tflite/model.tflite")
    >>> logits, class_ids, class_names = classifier(images)  # uint8 NHWC
    """

    def __init__(self, path: str, num_threads: int | None = None):
        self.path = path
        with tf.io.gfile.GFile(path + METADATA_SUFFIX) as f:
            self.metadata = json.load(f)
        self.image_shape = tuple(self.metadata["image_shape"])
        with tf.io.gfile.GFile(path, "rb") as f:
            content = f.read()
        self._interpreter = tf.lite.Interpreter(
            model_content=content, num_threads=num_threads
        )
        self._runner = self._interpreter.get_signature_runner()
        signature = self._runner.get_input_details()["images"]
        # A model that resizes (a folder run's `image_size`) takes any H, W.
        self.resizes = bool(np.any(signature["shape_signature"][1:3] < 0))
        self.num_classes = int(
            self._runner.get_output_details()["logits"]["shape_signature"][-1]
        )
        names = self.metadata.get("class_names")
        self.class_names = (
            [str(i) for i in range(self.num_classes)]
            if names is None
            else list(names)
        )

    def check(self, images) -> np.ndarray:
        """`images` as a numpy array; ValueError unless uint8 `[N, H, W, C]`
        of the model's `C` and, unless the model resizes, its `H, W`."""
        images = np.asarray(images)
        expected = (None, None, self.image_shape[2])
        if not self.resizes:
            expected = self.image_shape
        ok = images.dtype == np.uint8 and images.ndim == 4
        ok = ok and all(
            size is None and actual >= 1 or actual == size
            for actual, size in zip(images.shape[1:], expected, strict=True)
        )
        if not ok:
            shape = ", ".join("any" if d is None else str(d) for d in expected)
            raise ValueError(
                "Invalid value for argument `images`. Expected uint8 of "
                f"shape [batch, {shape}]. Received: images with dtype "
                f"{images.dtype} and shape {list(images.shape)}"
            )
        return images

    def __call__(self, images):
        """Classifies a batch of uint8 images.

        Returns:
            `(logits, class_ids, class_names)`: float32 `[N, num_classes]`
            adjusted logits, int32 `[N]` class indices and the `N` class
            names.
        """
        images = self.check(images)
        if images.shape[0] == 0:
            return (
                np.zeros([0, self.num_classes], np.float32),
                np.zeros([0], np.int32),
                [],
            )
        outputs = self._runner(images=images)
        class_ids = outputs["classes"]
        return (
            outputs["logits"],
            class_ids,
            [self.class_names[i] for i in class_ids],
        )
