"""The serving signatures' computation: check, preprocess, classify, adjust.

`la_keras.serving` wraps a `ServingSignature` in the `tf.function`s of a
SavedModel: `serving_default` (`__call__`) and `serve_with_prior`
(`with_prior`). A malformed request fails a `tf.debugging.Assert`: an error
for the caller, never an abort of the process.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from la_keras import adjustment as adjustment_lib
from la_keras.datasets import preprocess_images
from la_keras.datasets.preprocessing import resize_images


def served_logits(classifier, raw, train_log, prior=None):
    """The served logits of `raw`, the network's float32 logits.

    Args:
        classifier: a post-hoc `LogitAdjustedModel` (`serving_classifier`).
        raw: float32 `[batch, C]` logits of `classifier.model`.
        train_log: `log(train_prior**tau + eps)`, float32 `[C]`
            (`serving.retarget_terms`).
        prior: None for the classifier's own (uniform) rule, else the
            target class mix, `[C]` or `[batch, C]` (a tensor or array).

    Returns:
        float32 `[batch, C]`: `classifier.adjustment(raw)`, or
        `la_keras.adjustment.retarget`'s rule for `prior`.
    """
    if prior is None:
        return tf.cast(classifier.adjustment(raw), tf.float32)
    target_log = adjustment_lib.log_target_tensor(
        tf.convert_to_tensor(prior, tf.float32), classifier.epsilon
    )
    return raw - tf.constant(train_log, tf.float32) + target_log


class ServingSignature:
    """The `serving_default` computation: check, preprocess, classify, adjust.

    Args:
        classifier: a post-hoc `LogitAdjustedModel` (`serving_classifier`).
        preprocessing: "cifar" or "imagenet", see `preprocess_images`.
        image_shape: `(H, W, C)` of the model's input images.
        class_names: the names of the classes, or None.
        resize: `(H, W)` the raw images are resized to first, or None.
        train_log: `log(train_prior**tau + eps)` that a prior's logits take
            out of the raw ones, float32 `[C]` (zeros in loss mode).
        target_prior: the normalized prior `serving_default` serves, or
            None for the classifier's own (uniform) rule.
    """

    def __init__(
        self,
        classifier,
        preprocessing,
        image_shape,
        class_names,
        resize,
        train_log,
        target_prior=None,
    ):
        self.classifier = classifier
        self.train_log = np.asarray(train_log, np.float32)
        self.target_prior = target_prior
        self.preprocessing = preprocessing
        self.image_shape = tuple(int(d) for d in image_shape)
        self.class_names = None if class_names is None else list(class_names)
        self.resize = None if resize is None else tuple(resize)

    @property
    def any_size(self) -> bool:
        """Whether requests may have any height and width."""
        return self.preprocessing != "cifar" or self.resize is not None

    def input_spec(self) -> tf.TensorSpec:
        height, width, channels = self.image_shape
        if self.any_size:
            height = width = None
        shape = [None, height, width, channels]
        return tf.TensorSpec(shape, tf.uint8, "images")

    @property
    def num_classes(self) -> int:
        return int(self.classifier.priors.shape[0])

    def prior_spec(self) -> tf.TensorSpec:
        # Any rank: a wrong one is refused by `_check_prior`, with a message.
        return tf.TensorSpec(None, tf.float32, "prior")

    def __call__(self, images):
        prior = None
        if self.target_prior is not None:
            prior = tf.constant(self.target_prior, tf.float32)
        return self._serve(self._check(images), prior)

    def with_prior(self, images, prior):
        """The `serve_with_prior` computation."""
        images = self._check(images)
        return self._serve(images, self._check_prior(prior, images))

    def _serve(self, images, prior):
        # An empty batch skips the network (some CPU kernels reject it).
        return tf.cond(
            tf.shape(images)[0] > 0,
            lambda: self._outputs(images, prior),
            self._empty_outputs,
        )

    def _check_prior(self, prior, images):
        classes = self.num_classes
        shape = tf.shape(prior)
        padded = tf.concat([shape, tf.zeros([2], tf.int32)], axis=0)
        rank = tf.rank(prior)
        batch = tf.shape(images)[0]
        one = tf.logical_and(tf.equal(rank, 1), tf.equal(padded[0], classes))
        per_example = tf.reduce_all(
            tf.stack(
                [
                    tf.equal(rank, 2),
                    tf.equal(padded[1], classes),
                    tf.logical_or(
                        tf.equal(padded[0], batch), tf.equal(padded[0], 1)
                    ),
                ]
            )
        )
        shape_ok = tf.logical_or(one, per_example)
        # NaN fails `>= 0`; +inf fails `is_finite`.
        values_ok = tf.logical_and(
            tf.reduce_all(
                tf.logical_and(tf.math.is_finite(prior), prior >= 0.0)
            ),
            tf.reduce_all(tf.reduce_sum(prior, axis=-1) > 0.0),
        )
        checks = [
            tf.debugging.Assert(
                shape_ok,
                [
                    f"`prior` must be float32 of shape [{classes}] or "
                    f"[batch, {classes}] (one entry per class; a batch of "
                    "one or of `images`)",
                    shape,
                ],
            ),
            tf.debugging.Assert(
                values_ok,
                [
                    "`prior` must hold finite class probabilities or counts "
                    ">= 0 with a positive sum",
                    prior,
                ],
            ),
        ]
        with tf.control_dependencies(checks):
            return tf.identity(prior)

    def _check(self, images):
        # A loaded signature does not enforce its shapes: check them here, or
        # a kernel may abort the process on a malformed request.
        expected = list(self.image_shape)
        if self.any_size:
            expected = [None, None, expected[-1]]
        shape_text = ", ".join("any" if d is None else str(d) for d in expected)
        message = (
            f"`images` must be uint8 of shape [batch, {shape_text}] "
            "(a batch of the training images' size)"
        )
        # The signature's static rank is 4, whatever the request's: read
        # the dynamic shape, padded so that indexing never fails.
        shape = tf.shape(images)
        padded = tf.concat([shape, tf.zeros([4], tf.int32)], axis=0)
        checks = [tf.equal(tf.rank(images), 4)]
        for axis, size in enumerate(expected, start=1):
            actual = padded[axis]
            checks.append(
                actual >= 1 if size is None else tf.equal(actual, size)
            )
        checks = [
            tf.debugging.Assert(
                tf.reduce_all(tf.stack(checks)), [message, shape]
            )
        ]
        with tf.control_dependencies(checks):
            return tf.identity(images)

    def _empty_outputs(self):
        empty = tf.zeros([0, self.num_classes], tf.float32)
        outputs = {
            "logits": empty,
            "raw_logits": empty,
            "probabilities": empty,
            "classes": tf.zeros([0], tf.int64),
        }
        if self.class_names is not None:
            outputs["class_names"] = tf.zeros([0], tf.string)
        return outputs

    def _outputs(self, images, prior=None):
        if self.resize is not None:
            images = resize_images(images, self.resize)
        inputs = preprocess_images(
            images,
            self.preprocessing,
            training=False,
            image_size=self.image_shape[:2],
        )
        raw = tf.cast(self.classifier.model(inputs, training=False), tf.float32)
        logits = served_logits(self.classifier, raw, self.train_log, prior)
        outputs = {
            "logits": logits,
            "raw_logits": raw,
            "probabilities": tf.nn.softmax(logits, axis=-1),
            "classes": tf.argmax(logits, axis=-1),
        }
        if self.class_names is not None:
            names = tf.constant(self.class_names, tf.string)
            outputs["class_names"] = tf.gather(names, outputs["classes"])
        return outputs
