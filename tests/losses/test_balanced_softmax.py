import numpy as np
import tensorflow as tf

from la_keras.losses import BalancedSoftmaxLoss
from la_keras.losses import LogitAdjustedLoss
from la_keras.losses import balanced_softmax_crossentropy
from tests.losses.baseline_checks import CIFAR10_LT_COUNTS
from tests.losses.baseline_checks import LossContractTests
from tests.losses.baseline_checks import check_compiled_model_round_trip
from tests.losses.baseline_checks import log_softmax64
from tests.losses.baseline_checks import random_batch
from tests.losses.baseline_checks import soft_labels
from tests.test_case import TestCase


def reference_loss(labels, logits, counts):
    """Ren et al.'s `balanced_softmax_loss`: CE(logits + log(n)), float64."""
    z = np.asarray(logits, np.float64) + np.log(np.asarray(counts, np.float64))
    log_p = log_softmax64(z)
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[-1] == z.shape[-1]:
        return -(labels * log_p).sum(-1)
    labels = labels.reshape(-1).astype(int)
    return -log_p[np.arange(len(labels)), labels]


class BalancedSoftmaxLossTest(LossContractTests, TestCase):
    def test_matches_float64_reference(self):
        labels, logits = random_batch(batch=32)
        expected = reference_loss(labels, logits, CIFAR10_LT_COUNTS)
        loss = BalancedSoftmaxLoss(CIFAR10_LT_COUNTS, reduction=None)
        self.assertAllClose(loss(labels, logits), expected, rtol=1e-5)
        self.assertAllClose(
            balanced_softmax_crossentropy(labels, logits, CIFAR10_LT_COUNTS),
            expected,
            rtol=1e-5,
        )
        soft = soft_labels(batch=32)
        self.assertAllClose(
            loss(soft, logits),
            reference_loss(soft, logits, CIFAR10_LT_COUNTS),
            rtol=1e-5,
        )

    def test_equals_logit_adjustment_with_tau_one(self):
        labels, logits = random_batch(batch=32)
        soft = soft_labels(batch=32)
        ours = BalancedSoftmaxLoss(CIFAR10_LT_COUNTS, reduction=None)
        la = LogitAdjustedLoss(
            CIFAR10_LT_COUNTS, tau=1.0, epsilon=0.0, reduction=None
        )
        self.assertAllClose(ours(labels, logits), la(labels, logits), rtol=1e-6)
        self.assertAllClose(ours(soft, logits), la(soft, logits), rtol=1e-6)
        # With the official epsilon the difference is below float32 noise.
        default = LogitAdjustedLoss(CIFAR10_LT_COUNTS, tau=1.0, reduction=None)
        self.assertAllClose(
            ours(labels, logits), default(labels, logits), rtol=1e-5
        )

    def test_counts_or_priors(self):
        labels, logits = random_batch()
        counts = np.asarray(CIFAR10_LT_COUNTS)
        expected = BalancedSoftmaxLoss(counts)(labels, logits)
        for c in (
            CIFAR10_LT_COUNTS,
            counts / counts.sum(),
            tf.constant(counts),
        ):
            self.assertAllClose(
                BalancedSoftmaxLoss(c)(labels, logits), expected
            )

    def make_loss(self, **kwargs):
        return BalancedSoftmaxLoss(CIFAR10_LT_COUNTS, **kwargs)

    def reference(self, labels, logits):
        return reference_loss(labels, logits, CIFAR10_LT_COUNTS)

    def test_config(self):
        loss = BalancedSoftmaxLoss([100, 10, 1], name="bs")
        revived = self.run_serialization_test(loss)
        self.assertEqual(loss.get_config()["class_counts"], [100.0, 10.0, 1.0])
        labels, logits = random_batch(classes=3)
        self.assertAllClose(revived(labels, logits), loss(labels, logits))

    def test_model_saving(self):
        check_compiled_model_round_trip(
            self, BalancedSoftmaxLoss([100, 10, 1]), 3
        )

    def test_bad_arguments(self):
        with self.assertRaisesRegex(
            ValueError, r"Expected every class count > 0"
        ):
            BalancedSoftmaxLoss([10, 0, 1])
        with self.assertRaisesRegex(ValueError, "NaN"):
            BalancedSoftmaxLoss([10, np.nan])
        with self.assertRaisesRegex(ValueError, "1-D"):
            BalancedSoftmaxLoss([[10, 1]])
        loss = BalancedSoftmaxLoss([1, 2, 3])
        with self.assertRaisesRegex(
            ValueError, "class counts have 3 classes but the logits have 4"
        ):
            loss([0, 1], np.zeros((2, 4), np.float32))
