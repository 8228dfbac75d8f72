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

A second signature, `serve_with_prior`, takes `images` and a float32
`prior` (`[C]`, or `[batch, C]` for one per example: class probabilities or
counts) and returns the same outputs for that class mix, by
`la_keras.adjustment.retarget`'s rule: `raw_logits - log(train_prior**tau +
1e-12) + log(prior + 1e-12)` for a post-hoc or baseline model,
`raw_logits + log(prior + 1e-12)` for a loss-mode one. `serving_default`
serves the uniform mix as before, or the `target_prior` baked in at export
(then it equals `serve_with_prior` with that prior).

The SavedModel runs in TensorFlow 2 (`tf.saved_model.load`) and in the
session-based loaders of TF Serving and `saved_model_cli run`, which restore
the variables through the SavedModel's saver: every variable the signature
reads is in its object graph, exactly once.

With `tta` ("flip" or "crops5", `la_keras.tta`) the network's logits are
averaged over test-time views before the adjustment: `raw_logits` are the
ensembled ones, and every output follows from them. The loaded SavedModel
says which in its `tta` variable (a string, "none" by default;
`served_tta`).

A request of another shape or dtype is refused by the signature with an
error for the caller (`ValueError`/`TypeError` in Python, an
`INVALID_ARGUMENT` status in TF Serving); it never aborts the process. An
empty batch returns empty outputs.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from la_keras import adjustment as adjustment_lib
from la_keras import priors as priors_lib
from la_keras import serving_signature
from la_keras import tta as tta_lib
from la_keras.models import LogitAdjustedModel

SIGNATURE = "serving_default"
PRIOR_SIGNATURE = "serve_with_prior"


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
    *,
    mode="posthoc",
    train_prior=None,
    prior_tau=None,
    target_prior=None,
    tta="none",
):
    """`(module, signatures)`: the SavedModel's root object and signatures.

    The module holds the `tf.Variable`s that `serve` reads, not the Keras
    model: a Keras 3 variable saves itself as a copy of the `tf.Variable` it
    wraps, and the graph of a signature reads the wrapped one. Saved through
    the Keras model, the wrapped variables are left out of the saver's
    restore, and a session-based loader (TF Serving, `saved_model_cli run`)
    fails with "Could not find variable ...". Saved as the signature's own
    variables (as `keras.export.ExportArchive` does), each is restored, and
    written once.

    See `export_saved_model` for the arguments.
    """
    classifier = serving_classifier(
        tta_lib.ensemble_model(model, tta), priors, tau
    )
    train_log, target = retarget_terms(
        classifier, mode, train_prior, prior_tau, target_prior
    )
    signature = serving_signature.ServingSignature(
        classifier=classifier,
        preprocessing=preprocessing,
        image_shape=image_shape,
        class_names=class_names,
        resize=resize,
        train_log=train_log,
        target_prior=target,
    )
    serve = tf.function(
        signature, input_signature=[signature.input_spec()], autograph=False
    )
    with_prior = tf.function(
        signature.with_prior,
        input_signature=[signature.input_spec(), signature.prior_spec()],
        autograph=False,
    )
    module = tf.Module(name="la_keras_serving")
    graph_variables = {}
    for function in (serve, with_prior):
        for variable in function.get_concrete_function().variables:
            graph_variables.setdefault(id(variable), variable)
    module.graph_variables = list(graph_variables.values())
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
    module.target_prior = tf.Variable(
        np.full([signature.num_classes], 1.0 / signature.num_classes)
        if target is None
        else target,
        dtype=tf.float32,
        trainable=False,
        name="target_prior",
    )
    module.tta = tf.Variable(tta, trainable=False, name="tta")
    module.serve = serve
    module.serve_with_prior = with_prior
    return module, {SIGNATURE: serve, PRIOR_SIGNATURE: with_prior}


def served_tta(loaded) -> str:
    """The test-time ensembling a loaded SavedModel computes: its `tta`
    variable, or "none" (an export without it)."""
    if not hasattr(loaded, "tta"):
        return "none"
    return loaded.tta.numpy().decode()


def retarget_terms(classifier, mode, train_prior, prior_tau, target_prior):
    """`(train_log, target)`: what `serve_with_prior` takes out, the default.

    `train_log` is `log(train_prior**prior_tau + eps)` (`train_prior`
    defaulting to the classifier's priors, `prior_tau` to its tau), zeros in
    loss mode; `target` the normalized `target_prior`, or None.
    """
    num_classes = int(classifier.priors.shape[0])
    if mode not in adjustment_lib.MODES:
        raise ValueError(
            "Invalid value for argument `mode`. Expected one of "
            f"{adjustment_lib.MODES}. Received: mode={mode!r}"
        )
    named = {"train_prior": train_prior, "target_prior": target_prior}
    for name, value in named.items():
        if value is None:
            continue
        size = len(priors_lib.normalize(value, name))
        if size != num_classes:
            raise ValueError(
                f"Invalid value for argument `{name}`: {size} classes, but "
                f"the model has {num_classes} outputs."
            )
    if mode == "loss":
        train_log = np.zeros([num_classes], np.float32)
    else:
        train_log = adjustment_lib.log_adjustment(
            classifier.priors if train_prior is None else train_prior,
            classifier.tau if prior_tau is None else prior_tau,
            classifier.epsilon,
        )
    if target_prior is not None:
        target_prior = priors_lib.normalize(target_prior, "target_prior")
    return train_log, target_prior


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
    mode: str = "posthoc",
    train_prior=None,
    prior_tau: float | None = None,
    target_prior=None,
    tta: str = "none",
) -> str:
    """Writes `model` as a SavedModel with a uint8-image serving signature.

    Args:
        model: a Keras model mapping preprocessed float images to logits.
        export_dir: directory to write (overwritten). Callers that need the
            previous export to survive a kill write to a temporary folder
            and rename it (`la_keras.runs.outputs.atomic_dir`).
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
        mode: how the model was trained, "baseline", "posthoc" or "loss":
            the `serve_with_prior` rule (`la_keras.adjustment.retarget`).
        train_prior: the training prior `serve_with_prior` takes out of the
            raw logits (baseline, posthoc); default `priors` (uniform
            without them).
        prior_tau: the tau of that training prior; default `tau`.
        target_prior: the class mix `serving_default` serves: None for the
            uniform one (the post-hoc rule above, unchanged), else class
            probabilities or counts, served as `serve_with_prior` serves
            them.
        tta: "none", or the test-time ensembling of the network's logits,
            "flip" or "crops5" (`la_keras.tta`), recorded in the `tta`
            variable.

    Returns:
        `export_dir`.
    """
    module, signatures = serving_module(
        model,
        image_shape,
        preprocessing,
        priors,
        tau,
        class_names,
        resize,
        mode=mode,
        train_prior=train_prior,
        prior_tau=prior_tau,
        target_prior=target_prior,
        tta=tta,
    )
    tf.saved_model.save(module, export_dir, signatures=signatures)
    return export_dir
