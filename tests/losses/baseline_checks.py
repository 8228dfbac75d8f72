"""Shared checks for the comparison losses (not a test module)."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

CIFAR10_LT_COUNTS = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def random_batch(batch=16, classes=10, seed=0, scale=3.0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=scale, size=(batch, classes)).astype(np.float32)
    labels = rng.integers(0, classes, size=batch)
    return labels, logits


def soft_labels(batch=8, classes=10, seed=1):
    rng = np.random.default_rng(seed)
    return rng.dirichlet(np.ones(classes), size=batch).astype(np.float32)


def one_hot64(labels, classes):
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[-1] == classes:
        return labels.astype(np.float64)
    return np.eye(classes)[labels.reshape(-1).astype(int)]


def log_softmax64(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def check_against_reference(test, loss, function, reference, batch=32):
    """`loss` and its functional form `function(labels, logits)` give the
    float64 `reference(labels, logits)` of a random batch, and `loss` that
    of soft labels too."""
    labels, logits = random_batch(batch=batch)
    expected = reference(labels, logits)
    test.assertAllClose(loss(labels, logits), expected, rtol=1e-5)
    test.assertAllClose(function(labels, logits), expected, rtol=1e-5)
    soft = soft_labels(batch=batch)
    test.assertAllClose(loss(soft, logits), reference(soft, logits), rtol=1e-5)


class LossContractTests:
    """`check_label_formats`, `check_reductions_and_sample_weight` and
    `check_low_precision` as tests of a loss's TestCase, which defines
    `make_loss(**kwargs)` and `reference(labels, logits)` (float64, one
    value per example) and may override `batch(size)`."""

    LOW_PRECISION_BATCH = 16

    def batch(self, size):
        return random_batch(batch=size)

    def test_label_formats(self):
        labels, logits = self.batch(8)
        check_label_formats(
            self, self.make_loss(reduction=None), labels, logits,
            self.reference,
        )  # fmt: skip

    def test_reductions_and_sample_weight(self):
        labels, logits = self.batch(8)
        check_reductions_and_sample_weight(
            self, self.make_loss, labels, logits,
            self.reference(labels, logits),
        )  # fmt: skip

    def test_low_precision(self):
        labels, logits = self.batch(self.LOW_PRECISION_BATCH)
        check_low_precision(
            self, self.make_loss(), labels, logits, self.reference
        )


def check_label_formats(test, loss, labels, logits, reference):
    """Integer labels of several dtypes, [B, 1], one-hot and tensors."""
    expected = reference(labels, logits)
    for dtype in (np.int8, np.int32, np.int64):
        test.assertAllClose(
            loss(labels.astype(dtype), logits), expected, rtol=1e-5
        )
    test.assertAllClose(loss(labels[:, None], logits), expected, rtol=1e-5)
    one_hot = np.eye(logits.shape[-1], dtype=np.float32)[labels]
    test.assertAllClose(loss(one_hot, logits), expected, rtol=1e-5)
    test.assertAllClose(loss(tf.constant(labels), logits), expected, rtol=1e-5)


def check_reductions_and_sample_weight(
    test, make_loss, labels, logits, per_example
):
    """`per_example` is the float64 reference; `make_loss(reduction=...)`."""
    cases = {
        None: per_example,
        "none": per_example,
        "sum": per_example.sum(),
        "sum_over_batch_size": per_example.mean(),
    }
    for reduction, expected in cases.items():
        value = make_loss(reduction=reduction)(labels, logits)
        test.assertAllClose(value, expected, rtol=1e-5, atol=1e-6)
    weights = np.linspace(0.0, 2.0, len(labels)).astype(np.float32)
    value = make_loss()(labels, logits, sample_weight=weights)
    test.assertAllClose(value, (per_example * weights).mean(), rtol=1e-5)


def check_low_precision(test, loss, labels, logits, reference):
    """float16 / bfloat16 logits are computed in float32."""
    for dtype in ("float16", "bfloat16"):
        low = tf.cast(logits, dtype)
        rounded = tf.cast(low, tf.float32).numpy()
        value = loss(labels, low)
        test.assertEqual(value.dtype, tf.float32)
        test.assertAllClose(value, reference(labels, rounded).mean(), rtol=1e-5)
    big = tf.cast(np.full((2, logits.shape[-1]), 60000.0), "float16")
    test.assertTrue(np.all(np.isfinite(loss([0, 1], big).numpy())))


def check_compiled_model_round_trip(test, loss, classes):
    """Fits, saves to .keras and loads a model compiled with `loss`."""
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(classes)])
    model.compile("sgd", loss=loss)
    rng = np.random.default_rng(0)
    x = rng.random((32, 4)).astype(np.float32)
    y = rng.integers(0, classes, 32)
    history = model.fit(x, y, epochs=1, batch_size=16, verbose=0)
    test.assertTrue(np.isfinite(history.history["loss"][0]))
    path = os.path.join(test.get_temp_dir(), "model.keras")
    model.save(path)
    restored = keras.models.load_model(path)
    test.assertIsInstance(restored.loss, type(loss))
    test.assertEqual(restored.loss.get_config(), loss.get_config())
    test.assertAllClose(
        restored.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0)
    )
    return restored


requires_jax = pytest.mark.skipif(
    subprocess.run(
        [sys.executable, "-c", "import jax"], capture_output=True
    ).returncode
    != 0,
    reason="jax is not installed",
)


def run_with_jax(code):
    """Runs `code` in a subprocess with `KERAS_BACKEND=jax`; its stdout.

    The subprocess runs in the repository root, so it can import `tests`.
    """
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, KERAS_BACKEND="jax"),
        timeout=300,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout
