"""Loading a backbone's weights file, refused in one line when it does not fit.

Two formats: Keras Applications' HDF5 weights (`.h5`, as
`keras.applications.*(weights="imagenet")` downloads them: layers in
order, each with its named arrays) and Keras 3 weights files
(`.weights.h5`, `Model.save_weights`). Every array is checked against the
backbone before any is assigned, so a file of another width or another
architecture, or a truncated one, leaves the model as it was and raises a
`ValueError` naming the file and the first layer that does not fit.
"""

from __future__ import annotations

import os
import warnings

import numpy as np

KERAS3_SUFFIX = ".weights.h5"


def load_backbone_weights(backbone, path: str, what: str = "the backbone"):
    """Loads the weights file `path` into the Keras model `backbone`.

    Args:
        backbone: the model whose weights the file holds (no top).
        path: a `.h5` (Keras Applications) or `.weights.h5` (Keras 3) file.
        what: how messages name the backbone, e.g. "--model=mobilenet".

    Raises:
        FileNotFoundError: no file at `path`.
        ValueError: the file cannot be read, or does not fit `backbone`
            (one line naming the file and the first mismatching layer).
    """
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"Weights file {path} not found: pass the path of a Keras weights "
            "file of the backbone without its top (.h5 or .weights.h5), or "
            "'imagenet' to download the published weights."
        )
    import h5py

    try:
        handle = h5py.File(path, "r")
    except OSError as e:
        raise ValueError(
            f"Weights file {path} cannot be read as HDF5 (truncated or "
            f"corrupt: {_first_line(e)}). Download it again."
        ) from None
    with handle:
        if (
            path.endswith(KERAS3_SUFFIX)
            or "layer_names" not in _root(handle).attrs
        ):
            handle.close()
            return _load_keras3(backbone, path, what)
        try:
            pairs = _match_legacy(backbone, _root(handle), path, what)
            values = [
                (variable, np.asarray(data[()])) for variable, data in pairs
            ]
        except (OSError, KeyError, RuntimeError) as e:
            raise ValueError(
                f"Weights file {path} cannot be read (truncated or corrupt: "
                f"{_first_line(e)}). Download it again."
            ) from None
    for variable, value in values:
        variable.assign(value)


def _root(handle):
    # A whole model saved as HDF5 keeps its weights under "model_weights".
    return handle["model_weights"] if "model_weights" in handle else handle


def _weighted_layers(model):
    """`(name, [variable])` of the layers that own weights, in order (nested
    models flattened), each layer's in creation order, LoRA adapters left
    out: the order of Keras's HDF5 loader."""
    found = []
    for layer in model._flatten_layers(include_self=False, recursive=True):
        own = layer._trainable_variables + layer._non_trainable_variables
        own = [v for v in own if not v.name.startswith("lora_")]
        if own:
            found.append((layer.name, own))
    return found


def _match_legacy(backbone, root, path, what):
    """`(variable, h5 dataset)` pairs of a Keras Applications `.h5` file."""
    saved = []
    for name in root.attrs["layer_names"]:
        name = name.decode() if isinstance(name, bytes) else str(name)
        group = root[name]
        weights = [
            w.decode() if isinstance(w, bytes) else str(w)
            for w in group.attrs.get("weight_names", [])
        ]
        if weights:
            saved.append((name, [(w, group[w]) for w in weights]))
    layers = _weighted_layers(backbone)
    pairs = []
    for index, (layer_name, variables) in enumerate(layers):
        if index >= len(saved):
            raise ValueError(
                f"Weights file {path} does not fit {what}: it has "
                f"{len(saved)} layers with weights and the backbone "
                f"{len(layers)}; the first without weights in the file is "
                f"{layer_name!r}. Is it the file of this backbone and width?"
            )
        saved_name, arrays = saved[index]
        if len(arrays) != len(variables):
            raise ValueError(
                f"Weights file {path} does not fit {what}: layer "
                f"{layer_name!r} has {len(variables)} weights and the file's "
                f"layer {saved_name!r} {len(arrays)}. Is it the file of this "
                "backbone?"
            )
        for variable, (weight_name, data) in zip(
            variables, arrays, strict=True
        ):
            if tuple(data.shape) != tuple(variable.shape):
                raise ValueError(
                    f"Weights file {path} does not fit {what}: layer "
                    f"{layer_name!r} has {variable.name} of shape "
                    f"{tuple(variable.shape)} and the file's {weight_name} "
                    f"{tuple(data.shape)}. Is it the file of this backbone "
                    "and width (--model_width)?"
                )
            pairs.append((variable, data))
    if len(saved) != len(layers):
        raise ValueError(
            f"Weights file {path} does not fit {what}: it has {len(saved)} "
            f"layers with weights and the backbone {len(layers)}; the first "
            f"the backbone lacks is {saved[len(layers)][0]!r}. Is it the "
            "file of this backbone?"
        )
    return pairs


def _load_keras3(backbone, path, what):
    """A Keras 3 weights file, through Keras, its errors in one line."""
    before = [np.array(v) for v in backbone.weights]
    # A file that does not fit makes Keras warn once per layer it skips
    # before it raises: the refusal is then the one line below alone.
    with warnings.catch_warnings(record=True) as noted:
        warnings.simplefilter("always")
        try:
            backbone.load_weights(path)
            error = None
        except Exception as e:  # Keras raises several kinds
            error = e
    if error is None:
        for note in noted:
            warnings.warn_explicit(
                note.message, note.category, note.filename, note.lineno
            )
        return
    for variable, value in zip(backbone.weights, before, strict=True):
        variable.assign(value)  # keep the model as it was
    raise ValueError(
        f"Weights file {path} does not fit {what}: {_first_line(error)}"
    ) from None


def _first_line(error) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    # Keras's "... Example error message for object <Conv2D name=conv1>:"
    # continues on the next line.
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"
    return lines[0]
