import keras
import numpy as np
import tensorflow as tf

from la_keras.losses import DeferredReweighting
from la_keras.losses import LDAMLoss
from la_keras.losses import PairwiseMarginLoss
from la_keras.losses import class_balanced_weights
from la_keras.losses import ldam_loss
from la_keras.losses import ldam_margins
from tests.losses.baseline_checks import CIFAR10_LT_COUNTS
from tests.losses.baseline_checks import LossContractTests
from tests.losses.baseline_checks import check_compiled_model_round_trip
from tests.losses.baseline_checks import log_softmax64
from tests.losses.baseline_checks import random_batch
from tests.losses.baseline_checks import soft_labels
from tests.test_case import TestCase


def reference_loss(labels, x, counts, max_m=0.5, s=30.0, weight=None):
    """The official LDAM-DRW `LDAMLoss.forward`, float64 numpy, no reduction."""
    m_list = 1.0 / np.sqrt(np.sqrt(np.asarray(counts, np.float64)))
    m_list = m_list * (max_m / np.max(m_list))
    x = np.asarray(x, np.float64)
    labels = np.asarray(labels).reshape(-1).astype(int)
    index = np.zeros_like(x, dtype=bool)
    index[np.arange(len(labels)), labels] = True
    batch_m = m_list[labels][:, None]
    output = np.where(index, x - batch_m, x)
    nll = -log_softmax64(s * output)[np.arange(len(labels)), labels]
    if weight is not None:
        nll = nll * np.asarray(weight, np.float64)[labels]
    return nll


def cosine_batch(batch=16, seed=0):
    labels, logits = random_batch(batch=batch, seed=seed)
    return labels, np.tanh(logits / 3.0).astype(np.float32)


class LDAMLossTest(LossContractTests, TestCase):
    def test_margins(self):
        margins = ldam_margins(CIFAR10_LT_COUNTS, max_m=0.5)
        counts = np.asarray(CIFAR10_LT_COUNTS, np.float64)
        self.assertAllClose(margins, 0.5 * (50.0 / counts) ** 0.25)
        self.assertAlmostEqual(margins.max(), 0.5)
        # Only ratios matter: priors give the same margins.
        self.assertAllClose(ldam_margins(counts / counts.sum()), margins)

    def test_matches_official_code(self):
        labels, x = cosine_batch(batch=32)
        weight = class_balanced_weights(CIFAR10_LT_COUNTS, 0.9999)
        for max_m, s, w in (
            (0.5, 30.0, None),
            (0.3, 10.0, weight),
            (0.0, 1.0, None),
        ):
            expected = reference_loss(labels, x, CIFAR10_LT_COUNTS, max_m, s, w)
            loss = LDAMLoss(
                CIFAR10_LT_COUNTS, max_m, s, class_weights=w, reduction=None
            )
            self.assertAllClose(loss(labels, x), expected, rtol=1e-5, atol=1e-5)
            functional = ldam_loss(labels, x, CIFAR10_LT_COUNTS, max_m, s, w)
            self.assertAllClose(functional, expected, rtol=1e-5, atol=1e-5)

    def test_is_a_pairwise_margin_loss_of_scaled_logits(self):
        # s * (f_k - f_y + m_y) = (s m_y) + s f_k - s f_y: Delta[y, k] = s m_y.
        labels, x = cosine_batch()
        margins = ldam_margins(CIFAR10_LT_COUNTS)
        delta = np.repeat(30.0 * margins[:, None], 10, axis=1)
        pm = PairwiseMarginLoss(delta, reduction=None)
        ldam = LDAMLoss(CIFAR10_LT_COUNTS, reduction=None)
        self.assertAllClose(ldam(labels, x), pm(labels, 30.0 * x), rtol=1e-5)

    def test_soft_labels(self):
        _, x = cosine_batch(batch=8)
        soft = soft_labels(batch=8).astype(np.float64)
        w = np.linspace(0.5, 2.0, 10)
        margins = ldam_margins(CIFAR10_LT_COUNTS, 0.5)
        log_p = log_softmax64(30.0 * (x - soft * margins))
        expected = -(w * soft * log_p).sum(-1)
        loss = LDAMLoss(CIFAR10_LT_COUNTS, class_weights=w, reduction=None)
        self.assertAllClose(
            loss(soft.astype(np.float32), x), expected, rtol=1e-5
        )

    def batch(self, size):
        return cosine_batch(batch=size)

    def make_loss(self, **kwargs):
        return LDAMLoss(CIFAR10_LT_COUNTS, **kwargs)

    def reference(self, labels, x):
        return reference_loss(labels, x, CIFAR10_LT_COUNTS)

    def test_config(self):
        loss = LDAMLoss(
            [100, 10, 1], max_m=0.4, s=16.0, drw_start_epoch=3, name="ldam"
        )
        loss.on_epoch_begin(5)
        revived = self.run_serialization_test(loss)
        config = loss.get_config()
        self.assertTrue(all(type(v) is float for v in config["class_weights"]))
        self.assertAllClose(revived.class_weights, loss.class_weights)
        self.assertEqual(revived.drw_start_epoch, 3)
        labels = np.array([0, 2])
        x = np.array([[0.5, 0.1, -0.2], [0.0, 0.3, 0.4]], np.float32)
        self.assertAllClose(revived(labels, x), loss(labels, x))

    def test_model_saving(self):
        check_compiled_model_round_trip(
            self, LDAMLoss([100, 10, 1], s=5.0, drw_start_epoch=10), 3
        )

    def test_bad_arguments(self):
        with self.assertRaisesRegex(
            ValueError, r"Expected every class count > 0"
        ):
            LDAMLoss([10, 0, 1])
        with self.assertRaisesRegex(ValueError, "negative"):
            LDAMLoss([10, -1, 1])
        with self.assertRaisesRegex(ValueError, "`s`"):
            LDAMLoss([10, 1], s=0.0)
        with self.assertRaisesRegex(ValueError, "`max_m`"):
            LDAMLoss([10, 1], max_m=-0.1)
        with self.assertRaisesRegex(ValueError, "Expected 2 entries"):
            LDAMLoss([10, 1], class_weights=[1.0, 1.0, 1.0])
        with self.assertRaisesRegex(ValueError, "`start_epoch`"):
            LDAMLoss([10, 1], drw_start_epoch=-1)
        with self.assertRaisesRegex(ValueError, "`beta`"):
            LDAMLoss([10, 1], drw_beta=1.0)
        loss = LDAMLoss([1, 2, 3])
        with self.assertRaisesRegex(
            ValueError, "class counts have 3 classes but the logits have 4"
        ):
            loss([0, 1], np.zeros((2, 4), np.float32))
        with self.assertRaisesRegex(ValueError, "Expected 3 entries"):
            loss.set_class_weights([1.0, 2.0])


class DeferredReweightingTest(TestCase):
    def test_matches_official_schedule(self):
        # cifar_train.py: idx = epoch // 160; betas = [0, 0.9999]; ...
        counts = np.asarray(CIFAR10_LT_COUNTS)
        drw = DeferredReweighting(counts, start_epoch=160)
        for epoch in (0, 1, 159, 160, 161, 199):
            beta = [0, 0.9999][epoch // 160]
            effective_num = 1.0 - np.power(beta, counts)
            expected = (1.0 - beta) / np.array(effective_num)
            expected = expected / np.sum(expected) * len(counts)
            self.assertAllClose(
                drw.weights_for_epoch(epoch), expected, rtol=1e-5
            )
        self.assertAllClose(drw.weights_for_epoch(159), np.ones(10))
        self.assertAlmostEqual(float(drw.weights_for_epoch(160).sum()), 10.0, 4)

    def test_on_epoch_begin_switches_ldam_weights(self):
        loss = LDAMLoss(CIFAR10_LT_COUNTS, drw_start_epoch=2, reduction=None)
        labels, x = cosine_batch()
        balanced = class_balanced_weights(CIFAR10_LT_COUNTS, 0.9999)
        for epoch, weights in (
            (0, None),
            (1, None),
            (2, balanced),
            (7, balanced),
        ):
            loss.on_epoch_begin(epoch)
            expected = reference_loss(
                labels, x, CIFAR10_LT_COUNTS, weight=weights
            )
            self.assertAllClose(loss(labels, x), expected, rtol=1e-5)
        # No schedule: on_epoch_begin keeps the weights.
        plain = LDAMLoss(CIFAR10_LT_COUNTS, class_weights=balanced)
        self.assertAllClose(plain.on_epoch_begin(500), balanced)

    def test_traced_step_sees_new_weights_without_retracing(self):
        loss = LDAMLoss(CIFAR10_LT_COUNTS)
        drw = DeferredReweighting(CIFAR10_LT_COUNTS, start_epoch=1)
        labels, x = cosine_batch()
        traces = []

        @tf.function
        def step(y, z):
            traces.append(1)
            return loss(y, z)

        drw.update(loss, 0)
        before = step(labels, x)
        drw.update(loss, 1)
        after = step(labels, x)
        self.assertLen(traces, 1)
        self.assertAllClose(
            before,
            reference_loss(labels, x, CIFAR10_LT_COUNTS).mean(),
            rtol=1e-5,
        )
        weights = drw.weights_for_epoch(1)
        self.assertAllClose(
            after,
            reference_loss(labels, x, CIFAR10_LT_COUNTS, weight=weights).mean(),
            rtol=1e-5,
        )

    def test_mirrored_strategy(self):
        devices = tf.config.list_logical_devices("CPU")
        self.assertGreaterEqual(len(devices), 2, "conftest sets 2 CPUs")
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
        labels, x = cosine_batch()
        with strategy.scope():
            loss = LDAMLoss(CIFAR10_LT_COUNTS, drw_start_epoch=1)
        dataset = tf.data.Dataset.from_tensor_slices((x, labels)).batch(16)
        batch = next(iter(strategy.experimental_distribute_dataset(dataset)))

        @tf.function
        def step(batch):
            z, y = batch
            per_replica = strategy.run(lambda z, y: loss(y, z), args=(z, y))
            return strategy.reduce("SUM", per_replica, axis=None)

        for epoch in (0, 1):
            weights = loss.on_epoch_begin(epoch)
            expected = reference_loss(
                labels, x, CIFAR10_LT_COUNTS, weight=weights
            )
            self.assertAllClose(step(batch), expected.mean(), rtol=1e-5)
        self.assertEqual(step.experimental_get_tracing_count(), 1)

    def test_fit_callback(self):
        counts = [100, 10, 1]
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        loss = LDAMLoss(counts, s=5.0)
        drw = DeferredReweighting(counts, start_epoch=1)
        model.compile("sgd", loss=loss)
        x = np.random.rand(16, 4).astype(np.float32)
        y = np.random.randint(0, 3, 16)
        model.fit(x, y, epochs=1, verbose=0, callbacks=[drw.callback(loss)])
        self.assertAllClose(loss.class_weights, np.ones(3))
        model.fit(x, y, epochs=2, verbose=0, callbacks=[drw.callback(loss)])
        self.assertAllClose(loss.class_weights, class_balanced_weights(counts))

    def test_config_and_bad_arguments(self):
        drw = DeferredReweighting([100, 10, 1], start_epoch=4, beta=0.99)
        revived = DeferredReweighting.from_config(drw.get_config())
        self.assertAllClose(
            revived.weights_for_epoch(4), drw.weights_for_epoch(4)
        )
        with self.assertRaisesRegex(ValueError, "`start_epoch`"):
            DeferredReweighting([10, 1], start_epoch=1.5)
        with self.assertRaisesRegex(ValueError, r">= 1"):
            DeferredReweighting([0.9, 0.1], start_epoch=1)
