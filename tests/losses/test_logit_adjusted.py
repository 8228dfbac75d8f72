import os
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

from la_keras.losses import LogitAdjustedLoss
from la_keras.losses import logit_adjusted_crossentropy
from tests.losses.baseline_checks import requires_jax
from tests.losses.baseline_checks import run_with_jax
from tests.test_case import TestCase

CIFAR10_LT_COUNTS = [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


def reference_loss(labels, logits, priors, tau=1.0, epsilon=1e-12):
    """float64 numpy of the official release's loss, per example."""
    priors = np.asarray(priors, np.float64)
    priors = priors / priors.sum()
    z = np.asarray(logits, np.float64) + np.log(priors**tau + epsilon)
    z = z - z.max(axis=-1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[-1] == z.shape[-1]:
        return -(labels * log_probs).sum(-1)
    labels = labels.reshape(-1).astype(int)
    return -log_probs[np.arange(len(labels)), labels]


def random_batch(batch=16, classes=10, seed=0):
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=(batch, classes)).astype(np.float32)
    labels = rng.integers(0, classes, size=batch)
    return labels, logits


class LogitAdjustedLossTest(TestCase):
    def test_config(self):
        loss = LogitAdjustedLoss(CIFAR10_LT_COUNTS, tau=0.5, name="la")
        revived = self.run_serialization_test(loss)
        config = loss.get_config()
        self.assertIsInstance(config["priors"], list)
        self.assertTrue(all(type(p) is float for p in config["priors"]))
        self.assertAlmostEqual(sum(config["priors"]), 1.0)
        labels, logits = random_batch()
        self.assertAllClose(revived(labels, logits), loss(labels, logits))

    def test_matches_float64_reference_over_tau(self):
        labels, logits = random_batch(batch=64)
        for tau in (0.0, 0.5, 1.0, 1.5, 3.0):
            loss = LogitAdjustedLoss(CIFAR10_LT_COUNTS, tau=tau)
            expected = reference_loss(labels, logits, CIFAR10_LT_COUNTS, tau)
            self.assertAllClose(
                loss(labels, logits), expected.mean(), rtol=1e-5
            )
            per_example = logit_adjusted_crossentropy(
                labels, logits, CIFAR10_LT_COUNTS, tau=tau
            )
            self.assertAllClose(per_example, expected, rtol=1e-5, atol=1e-5)

    def test_hand_computed(self):
        # priors [0.9, 0.1]; logits 0 -> adjusted log(0.9), log(0.1).
        loss = LogitAdjustedLoss([9, 1], epsilon=0.0, reduction=None)
        out = loss([0, 1], [[0.0, 0.0], [0.0, 0.0]])
        self.assertAllClose(out, [-np.log(0.9), -np.log(0.1)], rtol=1e-6)

    def test_matches_official_closure(self):
        # The official release's loss, written with TF ops as it ships.
        base_probs = np.loadtxt(_reference_file("cifar10-lt"))
        labels, logits = random_batch(batch=32)
        for tau in (0.0, 1.0, 2.0):
            adjusted = logits + tf.math.log(
                tf.cast(base_probs**tau + 1e-12, dtype=tf.float32)
            )
            official = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(
                    labels=labels, logits=adjusted
                )
            )
            ours = LogitAdjustedLoss(base_probs, tau=tau)(labels, logits)
            self.assertAllClose(ours, official, rtol=1e-6)

    def test_tau_zero_is_sparse_crossentropy(self):
        labels, logits = random_batch()
        plain = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        ours = LogitAdjustedLoss(CIFAR10_LT_COUNTS, tau=0.0)
        self.assertAllClose(ours(labels, logits), plain(labels, logits))

    def test_label_formats(self):
        labels, logits = random_batch(batch=8)
        loss = LogitAdjustedLoss(CIFAR10_LT_COUNTS, reduction=None)
        expected = reference_loss(labels, logits, CIFAR10_LT_COUNTS)
        for dtype in (np.int8, np.uint8, np.int32, np.int64):
            self.assertAllClose(loss(labels.astype(dtype), logits), expected)
        self.assertAllClose(loss(labels[:, None], logits), expected)
        one_hot = np.eye(10, dtype=np.float32)[labels]
        self.assertAllClose(loss(one_hot, logits), expected)
        soft = np.random.default_rng(1).dirichlet(np.ones(10), size=8)
        self.assertAllClose(
            loss(soft.astype(np.float32), logits),
            reference_loss(soft, logits, CIFAR10_LT_COUNTS),
            rtol=1e-5,
        )
        self.assertAllClose(loss(tf.constant(labels), logits), expected)

    def test_sample_weight(self):
        labels, logits = random_batch(batch=8)
        weights = np.linspace(0.0, 2.0, 8).astype(np.float32)
        per_example = reference_loss(labels, logits, CIFAR10_LT_COUNTS)
        loss = LogitAdjustedLoss(CIFAR10_LT_COUNTS)
        self.assertAllClose(
            loss(labels, logits, sample_weight=weights),
            (per_example * weights).mean(),
            rtol=1e-5,
        )

    def test_reductions(self):
        labels, logits = random_batch(batch=8)
        per_example = reference_loss(labels, logits, CIFAR10_LT_COUNTS)
        cases = {
            None: per_example,
            "none": per_example,
            "sum": per_example.sum(),
            "sum_over_batch_size": per_example.mean(),
            "mean": per_example.mean(),
        }
        for reduction, expected in cases.items():
            loss = LogitAdjustedLoss(CIFAR10_LT_COUNTS, reduction=reduction)
            self.assertAllClose(loss(labels, logits), expected, rtol=1e-5)

    def test_priors_as_counts_list_array_tensor(self):
        labels, logits = random_batch()
        priors = np.asarray(CIFAR10_LT_COUNTS) / sum(CIFAR10_LT_COUNTS)
        expected = LogitAdjustedLoss(priors)(labels, logits)
        for p in (
            CIFAR10_LT_COUNTS,
            np.asarray(CIFAR10_LT_COUNTS),
            tf.constant(CIFAR10_LT_COUNTS),
            tf.constant(priors, tf.float32),
        ):
            self.assertAllClose(LogitAdjustedLoss(p)(labels, logits), expected)

    def test_bad_priors_refused(self):
        cases = {
            "negative": [0.5, -0.1, 0.6],
            "NaN": [0.5, np.nan, 0.5],
            "inf": [1.0, np.inf],
            "all entries are zero": [0.0, 0.0],
            "1-D": [[0.5, 0.5]],
        }
        for message, priors in cases.items():
            with self.assertRaisesRegex(ValueError, message):
                LogitAdjustedLoss(priors)
        with self.assertRaisesRegex(ValueError, "tau"):
            LogitAdjustedLoss([1, 2], tau=-1.0)

    def test_zero_prior_is_finite(self):
        priors = [0.5, 0.5, 0.0]
        logits = np.array([[0.0, 0.0, 100.0], [-100.0, 50.0, 0.0]], np.float32)
        for tau in (0.0, 1.0, 2.0):
            loss = LogitAdjustedLoss(priors, tau=tau, reduction=None)
            values = loss([2, 0], logits).numpy()
            self.assertTrue(np.all(np.isfinite(values)))
            self.assertAllClose(
                values, reference_loss([2, 0], logits, priors, tau), rtol=1e-5
            )
        # The gradient is finite too.
        x = tf.Variable(logits)
        with tf.GradientTape() as tape:
            value = LogitAdjustedLoss(priors)([2, 2], x)
        self.assertTrue(np.all(np.isfinite(tape.gradient(value, x).numpy())))
        with self.assertRaisesRegex(ValueError, "epsilon"):
            LogitAdjustedLoss(priors, epsilon=0.0)

    def test_class_count_mismatch_raises(self):
        loss = LogitAdjustedLoss([1, 2, 3])
        with self.assertRaisesRegex(
            ValueError, "3 classes but the logits have 4"
        ):
            loss([0, 1], np.zeros((2, 4), np.float32))
        with self.assertRaisesRegex(
            ValueError, "3 classes but the logits have 1"
        ):
            loss([0, 1], np.zeros((2, 1), np.float32))

    def test_mixed_precision_dtypes(self):
        labels, logits = random_batch(batch=32)
        expected = reference_loss(labels, logits, CIFAR10_LT_COUNTS).mean()
        for dtype in ("float16", "bfloat16"):
            low = tf.cast(logits, dtype)
            rounded = tf.cast(low, tf.float32).numpy()
            expected = reference_loss(labels, rounded, CIFAR10_LT_COUNTS).mean()
            value = LogitAdjustedLoss(CIFAR10_LT_COUNTS)(labels, low)
            self.assertEqual(value.dtype, tf.float32)
            self.assertAllClose(value, expected, rtol=1e-5)
        # Large float16 logits: exp would overflow in float16, not here.
        big = tf.cast(np.full((2, 10), 60000.0), "float16")
        value = LogitAdjustedLoss(CIFAR10_LT_COUNTS)([0, 9], big)
        self.assertTrue(np.isfinite(value.numpy()))

    def test_mixed_precision_policy_in_fit(self):
        keras.mixed_precision.set_global_policy("mixed_float16")
        try:
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
            model.compile("sgd", loss=LogitAdjustedLoss([100, 10, 1]))
            x = np.random.rand(32, 4).astype(np.float32)
            y = np.random.randint(0, 3, 32)
            history = model.fit(x, y, epochs=2, verbose=0)
            self.assertTrue(np.all(np.isfinite(history.history["loss"])))
        finally:
            keras.mixed_precision.set_global_policy("float32")

    def test_from_logits_false(self):
        labels, logits = random_batch()
        probs = tf.nn.softmax(logits).numpy()
        ours = LogitAdjustedLoss(CIFAR10_LT_COUNTS, from_logits=False)
        self.assertAllClose(
            ours(labels, probs),
            reference_loss(labels, logits, CIFAR10_LT_COUNTS).mean(),
            rtol=1e-4,
        )

    def test_fit_and_keras_file_round_trip(self):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile("sgd", loss=LogitAdjustedLoss([100, 10, 1], tau=1.5))
        x = np.random.rand(32, 4).astype(np.float32)
        y = np.random.randint(0, 3, 32)
        model.fit(x, y, epochs=1, verbose=0)
        path = os.path.join(self.get_temp_dir(), "m.keras")
        model.save(path)
        restored = keras.models.load_model(path)
        self.assertIsInstance(restored.loss, LogitAdjustedLoss)
        self.assertEqual(restored.loss.tau, 1.5)
        self.assertAllClose(
            restored.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0)
        )

    def test_gradient_tape_loop(self):
        labels, logits = random_batch(batch=8)
        x = tf.Variable(logits)
        with tf.GradientTape() as tape:
            value = LogitAdjustedLoss(CIFAR10_LT_COUNTS)(labels, x)
        grad = tape.gradient(value, x).numpy()
        # d/dz mean CE = (softmax(z + log p) - onehot) / B.
        adj = logits + np.log(np.array(CIFAR10_LT_COUNTS) / 12406 + 1e-12)
        soft = np.exp(adj - adj.max(-1, keepdims=True))
        soft /= soft.sum(-1, keepdims=True)
        expected = (soft - np.eye(10)[labels]) / 8
        self.assertAllClose(grad, expected, atol=1e-6)


class DistributedScalingTest(TestCase):
    def test_mirrored_sum_equals_global_mean(self):
        devices = tf.config.list_logical_devices("CPU")
        self.assertGreaterEqual(len(devices), 2, "conftest sets 2 CPUs")
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
        labels, logits = random_batch(batch=16)
        expected = reference_loss(labels, logits, CIFAR10_LT_COUNTS).mean()
        with strategy.scope():
            loss = LogitAdjustedLoss(CIFAR10_LT_COUNTS)
        dataset = tf.data.Dataset.from_tensor_slices((logits, labels)).batch(16)
        dist = strategy.experimental_distribute_dataset(dataset)

        @tf.function
        def step(batch):
            z, y = batch
            return strategy.run(lambda z, y: loss(y, z), args=(z, y))

        per_replica = step(next(iter(dist)))
        total = strategy.reduce("SUM", per_replica, axis=None)
        self.assertAllClose(total, expected, rtol=1e-5)


@requires_jax
def test_jax_backend_matches_reference():
    labels, logits = random_batch(batch=16)
    expected = reference_loss(labels, logits, CIFAR10_LT_COUNTS, tau=1.3)
    code = textwrap.dedent(
        f"""
        import numpy as np, keras, la_keras
        assert keras.backend.backend() == "jax"
        labels = np.array({labels.tolist()})
        logits = np.array({logits.tolist()}, np.float32)
        loss = la_keras.LogitAdjustedLoss({CIFAR10_LT_COUNTS}, tau=1.3,
                                          reduction=None)
        print(list(map(float, loss(labels, logits))))
        # The layer and the metrics run on this backend too.
        layer = la_keras.layers.LogitAdjustment({CIFAR10_LT_COUNTS})
        p = np.array({CIFAR10_LT_COUNTS}) / {sum(CIFAR10_LT_COUNTS)}
        np.testing.assert_allclose(
            np.asarray(layer(logits)), logits - np.log(p + 1e-12), rtol=1e-5
        )
        metric = la_keras.metrics.BalancedAccuracy(10)
        metric.update_state(labels, logits)
        recall = [
            (logits[labels == c].argmax(-1) == c).mean()
            for c in range(10) if (labels == c).any()
        ]
        np.testing.assert_allclose(float(metric.result()), np.mean(recall),
                                   rtol=1e-6)
        """
    )
    values = eval(run_with_jax(code).strip().splitlines()[-1])
    np.testing.assert_allclose(values, expected, rtol=1e-5)


def _reference_file(name):
    from tests.conftest import shared_reference_dir

    directory = shared_reference_dir()
    if directory is None:
        pytest.skip("../shared/reference is not present")
    return os.path.join(directory, f"{name}_base_probs.txt")
