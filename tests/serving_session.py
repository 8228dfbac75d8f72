"""Runs a serving SavedModel the way a server does: restored into a session.

TF Serving's C++ loader and `saved_model_cli run` restore the variables
through the SavedModel's saver into a TF1 session and run the signature as a
graph; `tf.saved_model.load` (TF2) takes another path. Both helpers below run
in a subprocess (graph mode, no GPU) and return numpy outputs.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np

from tests.launch import helpers

_SESSION_SCRIPT = """
import sys
import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()
export_dir, images_path, empty_path, bad_path, out_dir = sys.argv[1:]
with tf.compat.v1.Session(graph=tf.Graph()) as session:
    meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
    signature = meta.signature_def["serving_default"]
    images = signature.inputs["images"].name
    keys = sorted(signature.outputs)
    fetches = [signature.outputs[k].name for k in keys]

    def run(path):
        values = session.run(fetches, {images: np.load(path)})
        # Strings (the class_names output) as unicode: saved without pickle.
        values = [v.astype(str) if v.dtype == object else v for v in values]
        return dict(zip(keys, values))

    np.savez(f"{out_dir}/outputs.npz", **run(images_path))
    np.savez(f"{out_dir}/empty.npz", **run(empty_path))
    try:
        run(bad_path)
        bad = "accepted"
    except tf.errors.InvalidArgumentError as e:  # the signature's own check
        bad = e.message
    except ValueError as e:  # the client's check of the static shape
        bad = str(e)
with open(f"{out_dir}/bad.txt", "w") as f:
    f.write(bad)
"""


def _run(args, timeout=180):
    result = subprocess.run(
        args, capture_output=True, text=True, timeout=timeout, env=helpers.env()
    )
    if result.returncode != 0:
        raise AssertionError(
            f"{' '.join(args[:3])} failed:\n{result.stderr[-3000:]}"
        )
    return result


def run_in_session(export_dir, images, bad_images):
    """`serving_default` of `export_dir` in a `tf.compat.v1.Session`.

    Returns:
        `{"outputs": {key: array}, "empty": {key: array} of an empty batch,
        "bad": why `bad_images` was refused (or "accepted")}`: the
        signature's check, or the session client's check of the input's
        static shape.
    """
    with tempfile.TemporaryDirectory() as tmp:
        paths = [os.path.join(tmp, f"{n}.npy") for n in ("x", "empty", "bad")]
        empty = np.zeros((0, *images.shape[1:]), images.dtype)
        for path, value in zip(paths, (images, empty, bad_images), strict=True):
            np.save(path, value)
        _run([sys.executable, "-c", _SESSION_SCRIPT, export_dir, *paths,
              tmp])  # fmt: skip
        out = {}
        for key in ("outputs", "empty"):
            with np.load(os.path.join(tmp, f"{key}.npz")) as arrays:
                out[key] = dict(arrays)
        with open(os.path.join(tmp, "bad.txt")) as f:
            out["bad"] = f.read()
    return out


def run_saved_model_cli(export_dir, images):
    """`saved_model_cli run` on `serving_default`; `{key: array}`."""
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    with tempfile.TemporaryDirectory() as tmp:
        images_path = os.path.join(tmp, "x.npy")
        np.save(images_path, images)
        out_dir = os.path.join(tmp, "out")
        _run([cli, "run", "--dir", export_dir, "--tag_set", "serve",
              "--signature_def", "serving_default", "--outdir", out_dir,
              "--inputs", f"images={images_path}"])  # fmt: skip
        return {
            name[: -len(".npy")]: np.load(os.path.join(out_dir, name))
            for name in os.listdir(out_dir)
        }


def expected_outputs(
    model, images, preprocessing, priors=None, tau=0.0, class_names=None
):
    """The served outputs of `model` on `images`, adjusted in float64; with
    `class_names`, also each example's class by name."""
    from la_keras.datasets import preprocess_images

    inputs = preprocess_images(images, preprocessing, training=False)
    raw = np.asarray(model(inputs, training=False), np.float64)
    logits = raw
    if priors is not None:
        priors = np.asarray(priors, np.float64) / np.sum(priors)
        logits = raw - np.log(priors**tau + 1e-12)
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    expected = {
        "raw_logits": raw,
        "logits": logits,
        "probabilities": shifted / shifted.sum(axis=-1, keepdims=True),
        "classes": np.argmax(logits, axis=-1),
    }
    if class_names is not None:
        names = np.asarray(class_names, str)
        expected["class_names"] = names[expected["classes"]]
    return expected


def assert_served(test, served, expected, rtol=1e-4):
    """`served` equals `expected` up to float32 rounding of the network.

    Each float output is compared relative to its largest magnitude (logits
    near zero carry the absolute error of the larger ones). Classes must be
    equal where the top two expected logits are not within that error.
    """
    test.assertEqual(set(served), set(expected))
    for key in ("raw_logits", "logits", "probabilities"):
        scale = float(np.max(np.abs(expected[key]))) or 1.0
        np.testing.assert_allclose(
            served[key], expected[key], rtol=rtol, atol=rtol * scale,
            err_msg=key,
        )  # fmt: skip
    logits = np.sort(expected["logits"], axis=-1)
    clear = logits[:, -1] - logits[:, -2] > rtol * np.max(np.abs(logits))
    np.testing.assert_array_equal(
        np.asarray(served["classes"])[clear], expected["classes"][clear]
    )
    if "class_names" in expected:
        names = np.asarray(served["class_names"]).astype(str)
        np.testing.assert_array_equal(
            names[clear], expected["class_names"][clear]
        )


def assert_served_in_session(
    test, export_dir, model, images, priors=None, tau=0.0, class_names=None
):
    """`export_dir` run in a session (`run_in_session`) serves what `model`
    computes on the uint8 `images` (`expected_outputs`, CIFAR
    preprocessing), up to float32 rounding (`assert_served`)."""
    # A request of another size, which these checks do not read.
    bad = np.zeros((1, images.shape[1] + 1, *images.shape[2:]), np.uint8)
    session = run_in_session(export_dir, images, bad)
    expected = expected_outputs(
        model, images, "cifar", priors, tau, class_names
    )
    assert_served(test, session["outputs"], expected)


_PRIOR_SCRIPT = """
import sys
import numpy as np
import tensorflow as tf

tf.compat.v1.disable_eager_execution()
export_dir, images_path, priors_path, out_dir = sys.argv[1:]
with tf.compat.v1.Session(graph=tf.Graph()) as session:
    meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], export_dir)
    signature = meta.signature_def["serve_with_prior"]
    feeds = {k: signature.inputs[k].name for k in ("images", "prior")}
    keys = sorted(signature.outputs)
    fetches = [signature.outputs[k].name for k in keys]
    images = np.load(images_path)
    out, refused = {}, {}
    with np.load(priors_path) as priors:
        for name in priors.files:
            feed = {feeds["images"]: images, feeds["prior"]: priors[name]}
            try:
                values = session.run(fetches, feed)
            except tf.errors.InvalidArgumentError as e:
                refused[name] = e.message
                continue
            for key, value in zip(keys, values):
                out[f"{name}/{key}"] = value
np.savez(f"{out_dir}/outputs.npz", **out)
np.savez(f"{out_dir}/refused.npz", **refused)
"""


def run_with_prior_in_session(export_dir, images, priors):
    """`serve_with_prior` of `export_dir` in a `tf.compat.v1.Session`.

    Args:
        export_dir: the SavedModel.
        images: the uint8 images of every request.
        priors: `{name: prior array}`, one request each.

    Returns:
        `({name: {key: array}} of the served requests, {name: message} of
        the refused ones)`.
    """
    with tempfile.TemporaryDirectory() as tmp:
        images_path = os.path.join(tmp, "x.npy")
        priors_path = os.path.join(tmp, "priors.npz")
        np.save(images_path, images)
        np.savez(priors_path, **priors)
        _run([sys.executable, "-c", _PRIOR_SCRIPT, export_dir, images_path,
              priors_path, tmp])  # fmt: skip
        served = {}
        with np.load(os.path.join(tmp, "outputs.npz")) as arrays:
            for path in arrays.files:
                name, key = path.split("/")
                served.setdefault(name, {})[key] = arrays[path]
        with np.load(os.path.join(tmp, "refused.npz")) as arrays:
            refused = {name: str(arrays[name]) for name in arrays.files}
    return served, refused
