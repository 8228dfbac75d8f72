"""Export a trained classifier as a SavedModel for serving.

The served model is the library's own: a `LogitAdjustedModel` in post-hoc
mode (its `LogitAdjustment` layer subtracts `log(priors**tau + 1e-12)`),
behind the evaluation preprocessing (`la_keras.datasets.preprocess_images`).
The `serving_default` signature takes a batch of uint8 images named
`images`, of exactly the training data's `[batch, H, W, C]` (any `H, W` for
"imagenet" preprocessing, which resizes), and returns `logits` (adjusted),
`raw_logits` (the network's), `probabilities` (softmax of `logits`) and
`classes` (argmax), and, when the class names are given, `class_names` (the
name of each example's class). The loaded SavedModel also has the `tau`
variable, the `priors`, the `class_names` and the same function as `serve`.
A folder dataset resized to `image_size` (`resize`) is served images of any
size, resized as its input pipeline did.

The SavedModel runs in TensorFlow 2 (`tf.saved_model.load`) and in the
session-based loaders of TF Serving and `saved_model_cli run`, which restore
the variables through the SavedModel's saver: every variable the signature
reads is in its object graph, exactly once.

A request of another shape or dtype is refused by the signature with an
error for the caller (`ValueError`/`TypeError` in Python, an
`INVALID_ARGUMENT` status in TF Serving); it never aborts the process. An
empty batch returns empty outputs.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from la_keras import priors as priors_lib
from la_keras.datasets import preprocess_images
from la_keras.datasets.preprocessing import resize_images
from la_keras.models import LogitAdjustedModel

SIGNATURE = "serving_default"


class _Signature:
    """The `serving_default` computation: check, preprocess, classify, adjust.

    Args:
        classifier: a post-hoc `LogitAdjustedModel` (`serving_classifier`).
        preprocessing: "cifar" or "imagenet", see `preprocess_images`.
        image_shape: `(H, W, C)` of the model's input images.
        class_names: the names of the classes, or None.
        resize: `(H, W)` the raw images are resized to first, or None.
    """

    def __init__(
        self, classifier, preprocessing, image_shape, class_names, resize
    ):
        self.classifier = classifier
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

    def __call__(self, images):
        images = self._check(images)
        # An empty batch skips the network (some CPU kernels reject it).
        return tf.cond(
            tf.shape(images)[0] > 0,
            lambda: self._outputs(images),
            self._empty_outputs,
        )

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
        empty = tf.zeros([0, self.classifier.priors.shape[0]], tf.float32)
        outputs = {
            "logits": empty,
            "raw_logits": empty,
            "probabilities": empty,
            "classes": tf.zeros([0], tf.int64),
        }
        if self.class_names is not None:
            outputs["class_names"] = tf.zeros([0], tf.string)
        return outputs

    def _outputs(self, images):
        if self.resize is not None:
            images = resize_images(images, self.resize)
        inputs = preprocess_images(
            images,
            self.preprocessing,
            training=False,
            image_size=self.image_shape[:2],
        )
        raw = tf.cast(self.classifier.model(inputs, training=False), tf.float32)
        logits = tf.cast(self.classifier.adjustment(raw), tf.float32)
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


def serving_classifier(model, priors=None, tau: float = 0.0):
    """The post-hoc `LogitAdjustedModel` that serving wraps around `model`.

    Without `priors` (baseline and loss-mode runs) the adjustment is the
    identity: uniform priors and `tau=0`.
    """
    num_classes = int(model.output_shape[-1])
    if priors is None:
        priors, tau = np.full([num_classes], 1.0 / num_classes), 0.0
    values = priors_lib.normalize(priors)
    if values.shape[0] != num_classes:
        raise ValueError(
            f"Invalid value for argument `priors`: {values.shape[0]} "
            f"classes, but the model has {num_classes} outputs."
        )
    return LogitAdjustedModel(model, values, tau=tau, mode="posthoc")


def serving_module(
    model,
    image_shape,
    preprocessing,
    priors=None,
    tau=0.0,
    class_names=None,
    resize=None,
):
    """`(module, serve)`: the SavedModel's root object and its signature.

    The module holds the `tf.Variable`s that `serve` reads, not the Keras
    model: a Keras 3 variable saves itself as a copy of the `tf.Variable` it
    wraps, and the graph of a signature reads the wrapped one. Saved through
    the Keras model, the wrapped variables are left out of the saver's
    restore, and a session-based loader (TF Serving, `saved_model_cli run`)
    fails with "Could not find variable ...". Saved as the signature's own
    variables (as `keras.export.ExportArchive` does), each is restored, and
    written once.
    """
    classifier = serving_classifier(model, priors, tau)
    signature = _Signature(
        classifier, preprocessing, image_shape, class_names, resize
    )
    serve = tf.function(
        signature, input_signature=[signature.input_spec()], autograph=False
    )
    module = tf.Module(name="la_keras_serving")
    module.graph_variables = list(serve.get_concrete_function().variables)
    (tau_weight,) = [
        w for w in classifier.adjustment.weights if w.name == "tau"
    ]
    # The variable the graph reads (one of graph_variables), for `loaded.tau`.
    module.tau = tau_weight.value
    module.priors = tf.Variable(
        classifier.priors.astype(np.float32), trainable=False, name="priors"
    )
    if class_names is not None:
        module.class_names = tf.Variable(
            list(class_names), trainable=False, name="class_names"
        )
    module.serve = serve
    return module, serve


def export_saved_model(
    model,
    export_dir: str,
    image_shape,
    preprocessing: str,
    priors=None,
    tau: float = 0.0,
    *,
    class_names=None,
    resize=None,
) -> str:
    """Writes `model` as a SavedModel with a uint8-image serving signature.

    Args:
        model: a Keras model mapping preprocessed float images to logits.
        export_dir: directory to write (overwritten). Callers that need the
            previous export to survive a kill write to a temporary folder
            and rename it (`launch.outputs.atomic_dir`).
        image_shape: `(H, W, C)` of the raw images; for "imagenet"
            preprocessing (which resizes) only C is fixed.
        preprocessing: "cifar" or "imagenet", see `preprocess_images`.
        priors: class priors or counts for post-hoc adjustment, or None.
        tau: adjustment temperature; the served logits are
            `logits - log(priors**tau + 1e-12)`. Ignored without priors.
        class_names: the class names (`DatasetInfo.class_names`): the
            signature also returns `class_names`, each example's class by
            name. None: no such output.
        resize: `(H, W)` of a folder dataset resized to `image_size`
            (`DatasetInfo.resize`): requests of any size are resized to it
            first, as its input pipeline did. `image_shape` is then the
            resized shape.

    Returns:
        `export_dir`.
    """
    module, serve = serving_module(
        model, image_shape, preprocessing, priors, tau, class_names, resize
    )
    tf.saved_model.save(module, export_dir, signatures={SIGNATURE: serve})
    return export_dir
