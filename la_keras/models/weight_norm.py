"""Post-hoc tau-normalisation of the classifier (Kang et al., ICLR 2020)."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Iterable
from typing import Any

import keras
import numpy as np

from la_keras.losses import base


def _check_tau(tau: Any) -> float:
    return base.check_float(
        tau, "tau", hint="0 keeps the kernel, 1 is full normalisation"
    )


def find_classifier(
    model: keras.Model, layer_name: str | None = None
) -> keras.layers.Dense:
    """The Dense layer named `layer_name`, or the model's last top-level
    Dense layer; `ValueError` if there is none."""
    if layer_name is not None:
        try:
            layer = model.get_layer(layer_name)
        except ValueError as e:
            raise ValueError(
                "Invalid value for argument `layer_name`. Expected the name of "
                f"a Dense layer of the model. Received: layer_name={layer_name!r}"
            ) from e
        if not isinstance(layer, keras.layers.Dense):
            raise ValueError(
                "Invalid value for argument `layer_name`. Expected a Dense "
                f"layer. Received: layer_name={layer_name!r}, a "
                f"{type(layer).__name__}"
            )
        return layer
    dense = [
        layer for layer in model.layers if isinstance(layer, keras.layers.Dense)
    ]
    if not dense:
        raise ValueError(
            "Invalid value for argument `model`. Expected a model with a Dense "
            "classifier layer at its top level. Received: a model with layers "
            f"{[layer.name for layer in model.layers]}"
        )
    return dense[-1]


def tau_normalized_kernel(kernel: Any, tau: float) -> np.ndarray:
    """Divides each class column `w_y = kernel[:, y]` by `||w_y||**tau`.

    Columns with zero norm are left at zero. Computed in float64.

    Args:
        kernel: `[D, C]` Dense kernel.
        tau: `>= 0`.

    Returns:
        The normalised kernel, in the dtype of `kernel`.
    """
    tau = _check_tau(tau)
    kernel = np.asarray(keras.ops.convert_to_numpy(kernel))
    if kernel.ndim != 2:
        raise ValueError(
            "Invalid value for argument `kernel`. Expected a [D, C] Dense "
            f"kernel. Received: kernel of shape {kernel.shape}"
        )
    values = kernel.astype(np.float64)
    norms = np.linalg.norm(values, axis=0)
    scale = np.where(
        norms > 0, np.power(np.where(norms > 0, norms, 1.0), -tau), 1.0
    )
    return (values * scale[None, :]).astype(kernel.dtype)


def tau_normalize(
    model: keras.Model, tau: float, layer_name: str | None = None
) -> keras.Model:
    """Returns a copy of `model` with a tau-normalised classifier.

    Kang et al.'s post-hoc tau-normalisation: the classifier weights of
    class `y`, `w_y = kernel[:, y]` of the final Dense layer, become
    `w_y / ||w_y||**tau`, rebalancing the norms that long-tailed training
    inflates for head classes. `tau=0` keeps the kernel and `tau=1` gives
    unit-norm class weights.

    The bias is dropped, as in Kang et al.'s tau-normalised classifier
    (`logits = features @ normalised_kernel`): the returned model's Dense
    layer has `use_bias=False`. So `tau=0` leaves the logits unchanged only
    when the layer has no bias.

    The model is cloned with `keras.models.clone_model` (Sequential or
    Functional models; the Dense layer must be at the top level) and every
    weight is copied, so the original model is not modified and later
    changes to it do not reach the copy.

    Formula:

    ```python
    kernel[:, y] = kernel[:, y] / norm(kernel[:, y]) ** tau;  bias = 0
    ```

    Args:
        model: a Sequential or Functional Keras model.
        tau: normalisation strength `>= 0`; choose it on a holdout split
            with `sweep_weight_norm_tau`, never on the test set.
        layer_name: name of the Dense classifier layer. Defaults to the last
            top-level Dense layer.

    Returns:
        A new `keras.Model`.

    Example:

    ```python
    balanced = tau_normalize(model, tau=1.0)
    logits = balanced.predict(images)
    ```

    References:
        - [Kang et al., 2020](https://arxiv.org/abs/1910.09217)
    """
    tau = _check_tau(tau)
    dense = find_classifier(model, layer_name)
    kernel = dense.kernel
    if len(kernel.shape) != 2:
        raise ValueError(
            "Invalid value for argument `model`. Expected the classifier "
            f"kernel to be [D, C]. Received: {dense.name} kernel of shape "
            f"{tuple(kernel.shape)}"
        )

    def clone_layer(layer):
        config = layer.get_config()
        if layer is dense:
            config["use_bias"] = False
        return layer.__class__.from_config(config)

    try:
        clone = keras.models.clone_model(model, clone_function=clone_layer)
    except ValueError as e:
        raise ValueError(
            "Invalid value for argument `model`. Expected a Sequential or "
            f"Functional model that `keras.models.clone_model` can copy. "
            f"Received: a {type(model).__name__} ({e})"
        ) from e
    for layer in model.layers:
        if not layer.weights:
            continue  # Input layers are renamed by clone_model.
        target = clone.get_layer(layer.name)
        if layer is dense:
            target.kernel.assign(tau_normalized_kernel(layer.kernel, tau))
        else:
            target.set_weights(layer.get_weights())
    return clone


def _predict_logits(model, dataset):
    logits, labels = [], []
    if isinstance(dataset, tuple):
        dataset = [dataset]
    for features, label in dataset:
        logits.append(
            keras.ops.convert_to_numpy(model(features, training=False))
        )
        labels.append(np.asarray(keras.ops.convert_to_numpy(label)))
    return np.concatenate(logits), np.concatenate(labels)


def sweep_weight_norm_tau(
    model: keras.Model,
    dataset: Any,
    taus: Iterable[float],
    metric_fn: Callable[[np.ndarray, np.ndarray], float],
    layer_name: str | None = None,
) -> tuple[float, dict[float, float]]:
    """Chooses the tau of `tau_normalize` that maximises `metric_fn`.

    Use a holdout split of the *training* distribution or a balanced
    validation set, never the test set: the chosen tau would then be
    tuned on the numbers it is reported with.

    Args:
        model: a Sequential or Functional Keras model, see `tau_normalize`.
        dataset: an iterable of `(features, labels)` batches, such as a
            batched `tf.data.Dataset`, or one `(features, labels)` tuple of
            arrays.
        taus: candidate taus, each `>= 0`.
        metric_fn: `metric_fn(labels, logits) -> float` on numpy arrays,
            higher is better (for example balanced accuracy).
        layer_name: the Dense classifier layer, see `tau_normalize`.

    Returns:
        `(best_tau, scores)` with `scores` mapping each tau to its metric.
        Ties go to the first tau in `taus`.

    Example:

    ```python
    def balanced_accuracy(labels, logits):
        hits = logits.argmax(-1) == labels
        return np.mean([hits[labels == c].mean() for c in np.unique(labels)])

    tau, scores = sweep_weight_norm_tau(
        model, holdout, np.linspace(0, 2, 9), balanced_accuracy
    )
    model = tau_normalize(model, tau)
    ```

    References:
        - [Kang et al., 2020](https://arxiv.org/abs/1910.09217)
    """
    taus = [_check_tau(tau) for tau in taus]
    if not taus:
        raise ValueError(
            "Invalid value for argument `taus`. Expected at least one tau. "
            "Received: taus=[]"
        )
    scores: dict[float, float] = {}
    for tau in taus:
        if tau in scores:
            continue
        logits, labels = _predict_logits(
            tau_normalize(model, tau, layer_name), dataset
        )
        scores[tau] = float(metric_fn(labels, logits))
    best_tau = max(scores, key=lambda tau: scores[tau])
    return best_tau, scores
