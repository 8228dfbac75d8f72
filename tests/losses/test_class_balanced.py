import keras
import numpy as np
import tensorflow as tf

from la_keras.losses import ClassBalancedLoss
from la_keras.losses import FocalLoss
from la_keras.losses import class_balanced_crossentropy
from la_keras.losses import class_balanced_weights
from la_keras.losses import softmax_focal_crossentropy
from tests.losses.baseline_checks import CIFAR10_LT_COUNTS
from tests.losses.baseline_checks import LossContractTests
from tests.losses.baseline_checks import check_against_reference
from tests.losses.baseline_checks import check_compiled_model_round_trip
from tests.losses.baseline_checks import log_softmax64
from tests.losses.baseline_checks import one_hot64
from tests.losses.baseline_checks import random_batch
from tests.losses.baseline_checks import soft_labels
from tests.test_case import TestCase


def reference_weights(counts, beta):
    """Cui et al.'s official `get_weights`, float64, class by class."""
    weights = [(1.0 - beta) / (1.0 - beta ** float(n)) for n in counts]
    weights = np.array(weights)
    return weights / weights.sum() * len(counts)


def reference_focal(labels, logits, gamma, weights=None):
    """-w_y (1 - p_y)^gamma log p_y (soft labels: summed over classes)."""
    log_p = log_softmax64(logits)
    y = one_hot64(labels, log_p.shape[-1])
    w = np.ones(log_p.shape[-1]) if weights is None else np.asarray(weights)
    return -(w * y * (1.0 - np.exp(log_p)) ** gamma * log_p).sum(-1)


class ClassBalancedWeightsTest(TestCase):
    def test_matches_reference(self):
        for beta in (0.9, 0.99, 0.999, 0.9999):
            self.assertAllClose(
                class_balanced_weights(CIFAR10_LT_COUNTS, beta),
                reference_weights(CIFAR10_LT_COUNTS, beta),
                rtol=1e-9,
            )
        weights = class_balanced_weights(CIFAR10_LT_COUNTS, 0.9999)
        self.assertAlmostEqual(weights.sum(), 10.0)
        self.assertTrue(np.all(np.diff(weights) > 0))

    def test_limits(self):
        self.assertAllClose(
            class_balanced_weights(CIFAR10_LT_COUNTS, 0.0), np.ones(10)
        )
        # beta -> 1: inverse class frequency.
        inverse = 1.0 / np.asarray(CIFAR10_LT_COUNTS, np.float64)
        self.assertAllClose(
            class_balanced_weights(CIFAR10_LT_COUNTS, 1.0 - 1e-9),
            inverse / inverse.sum() * 10,
            rtol=1e-4,
        )

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "`beta`"):
            class_balanced_weights([10, 1], beta=1.0)
        with self.assertRaisesRegex(ValueError, "`beta`"):
            class_balanced_weights([10, 1], beta=-0.1)
        with self.assertRaisesRegex(
            ValueError, r"Expected every class count >= 1"
        ):
            class_balanced_weights([0.9, 0.1])
        with self.assertRaisesRegex(
            ValueError, r"Expected every class count >= 1"
        ):
            class_balanced_weights([10, 0])


class FocalLossTest(LossContractTests, TestCase):
    def test_matches_float64_reference(self):
        labels, logits = random_batch(batch=32)
        soft = soft_labels(batch=32)
        for gamma in (0.0, 0.5, 1.0, 2.0, 5.0):
            loss = FocalLoss(gamma, reduction=None)
            expected = reference_focal(labels, logits, gamma)
            self.assertAllClose(
                loss(labels, logits), expected, rtol=1e-5, atol=1e-6
            )
            self.assertAllClose(
                softmax_focal_crossentropy(labels, logits, gamma),
                expected,
                rtol=1e-5,
                atol=1e-6,
            )
            self.assertAllClose(
                loss(soft, logits),
                reference_focal(soft, logits, gamma),
                rtol=1e-5,
                atol=1e-6,
            )
        w = np.linspace(0.5, 2.0, 10)
        self.assertAllClose(
            softmax_focal_crossentropy(labels, logits, 2.0, w),
            reference_focal(labels, logits, 2.0, w),
            rtol=1e-5,
            atol=1e-6,
        )

    def test_agrees_with_keras_categorical_focal(self):
        labels, logits = random_batch()
        keras_focal = keras.losses.CategoricalFocalCrossentropy(
            alpha=1.0, gamma=2.0, from_logits=True, reduction=None
        )
        one_hot = np.eye(10, dtype=np.float32)[labels]
        self.assertAllClose(
            FocalLoss(2.0, reduction=None)(labels, logits),
            keras_focal(one_hot, logits),
            rtol=1e-5,
            atol=1e-6,
        )

    def test_gradient_is_finite_when_confident(self):
        x = tf.Variable([[100.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
        with tf.GradientTape() as tape:
            value = FocalLoss(gamma=0.5)([0, 1], x)
        self.assertTrue(np.all(np.isfinite(tape.gradient(value, x).numpy())))

    LOW_PRECISION_BATCH = 8

    def make_loss(self, **kwargs):
        return FocalLoss(**kwargs)

    def reference(self, labels, logits):
        return reference_focal(labels, logits, 2.0)

    def test_config_and_saving(self):
        loss = FocalLoss(gamma=1.5, name="focal")
        revived = self.run_serialization_test(loss)
        self.assertEqual(revived.gamma, 1.5)
        check_compiled_model_round_trip(self, loss, 3)
        with self.assertRaisesRegex(ValueError, "`gamma`"):
            FocalLoss(gamma=-1.0)


class ClassBalancedLossTest(LossContractTests, TestCase):
    def test_matches_float64_reference(self):
        for beta in (0.0, 0.99, 0.9999):
            w = reference_weights(CIFAR10_LT_COUNTS, beta)
            for loss_type, gamma in (
                ("softmax", 0.0),
                ("focal", 1.0),
                ("focal", 2.0),
            ):
                check_against_reference(
                    self,
                    ClassBalancedLoss(
                        CIFAR10_LT_COUNTS, beta, loss_type, gamma=gamma,
                        reduction=None,
                    ),
                    lambda y, z, b=beta, t=loss_type, g=gamma: (
                        class_balanced_crossentropy(
                            y, z, CIFAR10_LT_COUNTS, b, t, g
                        )
                    ),
                    lambda y, z, g=gamma, w=w: reference_focal(y, z, g, w),
                )  # fmt: skip

    def test_softmax_ignores_gamma_and_is_weighted_crossentropy(self):
        labels, logits = random_batch()
        w = reference_weights(CIFAR10_LT_COUNTS, 0.9999)
        ce = keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True
        )
        loss = ClassBalancedLoss(CIFAR10_LT_COUNTS, gamma=5.0, reduction=None)
        self.assertAllClose(loss(labels, logits), w[labels] * ce, rtol=1e-5)

    LOW_PRECISION_BATCH = 8

    def make_loss(self, **kwargs):
        return ClassBalancedLoss(CIFAR10_LT_COUNTS, loss_type="focal", **kwargs)

    def reference(self, labels, logits):
        w = reference_weights(CIFAR10_LT_COUNTS, 0.9999)
        return reference_focal(labels, logits, 2.0, w)

    def test_config_and_saving(self):
        loss = ClassBalancedLoss(
            [100, 10, 1], 0.99, "focal", gamma=1.0, name="cb"
        )
        revived = self.run_serialization_test(loss)
        self.assertEqual(revived.loss_type, "focal")
        self.assertEqual(loss.get_config()["class_counts"], [100.0, 10.0, 1.0])
        check_compiled_model_round_trip(self, loss, 3)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "`loss_type`"):
            ClassBalancedLoss([10, 1], loss_type="sigmoid")
        with self.assertRaisesRegex(ValueError, "`beta`"):
            ClassBalancedLoss([10, 1], beta=1.5)
        with self.assertRaisesRegex(ValueError, r">= 1"):
            ClassBalancedLoss([0.9, 0.1])
        loss = ClassBalancedLoss([1, 2, 3])
        with self.assertRaisesRegex(
            ValueError, "class counts have 3 classes but the logits have 4"
        ):
            loss([0, 1], np.zeros((2, 4), np.float32))
