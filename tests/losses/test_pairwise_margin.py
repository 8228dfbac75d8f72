import keras
import numpy as np
import tensorflow as tf

from la_keras.losses import LogitAdjustedLoss
from la_keras.losses import PairwiseMarginLoss
from la_keras.losses import pairwise_margin_loss
from tests.losses.baseline_checks import CIFAR10_LT_COUNTS
from tests.losses.baseline_checks import LossContractTests
from tests.losses.baseline_checks import check_compiled_model_round_trip
from tests.losses.baseline_checks import one_hot64
from tests.losses.baseline_checks import random_batch
from tests.losses.baseline_checks import soft_labels
from tests.test_case import TestCase


def reference_loss(labels, logits, margins, alpha=None):
    """float64 eq. (11) of Menon et al., one example at a time."""
    f = np.asarray(logits, np.float64)
    margins = np.asarray(margins, np.float64)
    classes = f.shape[-1]
    alpha = np.ones(classes) if alpha is None else np.asarray(alpha, np.float64)
    out = []
    for row, y in zip(
        f, np.asarray(labels).reshape(-1).astype(int), strict=True
    ):
        total = sum(
            np.exp(margins[y, k] + row[k] - row[y])
            for k in range(classes)
            if k != y
        )
        out.append(alpha[y] * np.log1p(total))
    return np.array(out)


def random_margins(classes=10, seed=3):
    return np.random.default_rng(seed).normal(size=(classes, classes))


def la_margins(priors, tau):
    pi = np.asarray(priors, np.float64) / np.sum(priors)
    return tau * np.log(pi[None, :] / pi[:, None])


class PairwiseMarginLossTest(LossContractTests, TestCase):
    def test_matches_float64_reference(self):
        labels, logits = random_batch(batch=32)
        margins = random_margins()
        alpha = np.random.default_rng(4).uniform(0.1, 3.0, size=10)
        for weights in (None, alpha):
            expected = reference_loss(labels, logits, margins, weights)
            loss = PairwiseMarginLoss(margins, weights, reduction=None)
            self.assertAllClose(loss(labels, logits), expected, rtol=1e-5)
            self.assertAllClose(
                pairwise_margin_loss(labels, logits, margins, weights),
                expected,
                rtol=1e-5,
            )

    def test_diagonal_is_ignored(self):
        labels, logits = random_batch()
        margins = random_margins()
        shifted = margins + np.diag(np.arange(10.0) + 5.0)
        self.assertAllClose(
            PairwiseMarginLoss(shifted)(labels, logits),
            PairwiseMarginLoss(margins)(labels, logits),
        )
        with_inf = margins.copy()
        np.fill_diagonal(with_inf, np.inf)
        self.assertAllClose(
            PairwiseMarginLoss(with_inf)(labels, logits),
            PairwiseMarginLoss(margins)(labels, logits),
        )

    def test_equals_logit_adjusted_loss(self):
        labels, logits = random_batch(batch=32)
        soft = soft_labels(batch=32)
        for tau in (0.0, 0.5, 1.0, 2.0):
            la = LogitAdjustedLoss(
                CIFAR10_LT_COUNTS, tau=tau, epsilon=0.0, reduction=None
            )
            pm = PairwiseMarginLoss(
                la_margins(CIFAR10_LT_COUNTS, tau), reduction=None
            )
            self.assertAllClose(
                pm(labels, logits), la(labels, logits), rtol=1e-5
            )
            # The label-weighted row is exact for soft labels too.
            self.assertAllClose(pm(soft, logits), la(soft, logits), rtol=1e-5)

    def test_zero_margins_and_weights_is_weighted_crossentropy(self):
        labels, logits = random_batch()
        alpha = np.linspace(0.5, 2.0, 10)
        ce = keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True
        ).numpy()
        loss = PairwiseMarginLoss(np.zeros((10, 10)), alpha, reduction=None)
        self.assertAllClose(loss(labels, logits), alpha[labels] * ce, rtol=1e-5)

    def test_soft_labels_mix_rows(self):
        _, logits = random_batch(batch=8)
        soft = soft_labels(batch=8).astype(np.float64)
        margins = random_margins()
        alpha = np.linspace(0.5, 2.0, 10)
        np.fill_diagonal(margins, 0.0)
        f = logits.astype(np.float64)
        rows = soft @ margins + f
        lse = np.log(np.exp(rows).sum(-1))
        expected = (lse - (soft * f).sum(-1)) * (soft @ alpha)
        loss = PairwiseMarginLoss(margins, alpha, reduction=None)
        self.assertAllClose(
            loss(soft.astype(np.float32), logits), expected, rtol=1e-5
        )

    def make_loss(self, **kwargs):
        return PairwiseMarginLoss(random_margins(), **kwargs)

    def reference(self, labels, logits):
        return reference_loss(labels, logits, random_margins())

    def test_gradient(self):
        labels, logits = random_batch(batch=4)
        margins = random_margins()
        x = tf.Variable(logits)
        with tf.GradientTape() as tape:
            value = PairwiseMarginLoss(margins, reduction="sum")(labels, x)
        grad = tape.gradient(value, x).numpy()
        # d/df of log sum_k exp(D[y, k] + f_k) - f_y.
        np.fill_diagonal(margins, 0.0)
        shifted = margins[labels] + logits.astype(np.float64)
        soft = np.exp(shifted - shifted.max(-1, keepdims=True))
        soft /= soft.sum(-1, keepdims=True)
        self.assertAllClose(grad, soft - one_hot64(labels, 10), atol=1e-6)

    def test_config(self):
        loss = PairwiseMarginLoss(random_margins(3), [1.0, 2.0, 3.0], name="pm")
        revived = self.run_serialization_test(loss)
        config = loss.get_config()
        self.assertTrue(
            all(type(v) is float for row in config["margins"] for v in row)
        )
        self.assertTrue(all(type(v) is float for v in config["class_weights"]))
        labels, logits = random_batch(classes=3)
        self.assertAllClose(revived(labels, logits), loss(labels, logits))

    def test_model_saving(self):
        check_compiled_model_round_trip(
            self, PairwiseMarginLoss(random_margins(3), [1.0, 2.0, 0.5]), 3
        )

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "square"):
            PairwiseMarginLoss(np.zeros((2, 3)))
        with self.assertRaisesRegex(ValueError, "square"):
            PairwiseMarginLoss([1.0, 2.0])
        with self.assertRaisesRegex(ValueError, "finite off-diagonal"):
            PairwiseMarginLoss([[0.0, np.nan], [0.0, 0.0]])
        with self.assertRaisesRegex(ValueError, "Expected 2 entries"):
            PairwiseMarginLoss(np.zeros((2, 2)), [1.0, 1.0, 1.0])
        with self.assertRaisesRegex(ValueError, "negative"):
            PairwiseMarginLoss(np.zeros((2, 2)), [1.0, -1.0])
        loss = PairwiseMarginLoss(np.zeros((3, 3)))
        with self.assertRaisesRegex(
            ValueError, "margins have 3 classes but the logits have 4"
        ):
            loss([0, 1], np.zeros((2, 4), np.float32))
