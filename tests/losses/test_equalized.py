import itertools

import keras
import numpy as np
import tensorflow as tf

from la_keras.losses import EqualizedLoss
from la_keras.losses import equalized_crossentropy
from tests.losses.baseline_checks import CIFAR10_LT_COUNTS
from tests.losses.baseline_checks import LossContractTests
from tests.losses.baseline_checks import check_against_reference
from tests.losses.baseline_checks import check_compiled_model_round_trip
from tests.losses.baseline_checks import one_hot64
from tests.losses.baseline_checks import random_batch
from tests.test_case import TestCase


def reference_loss(labels, logits, counts, lambda_, beta=None):
    """Tan et al.'s softmax EQL in float64, one example at a time.

    `beta` is a [B, C] 0/1 array (defaults to ones, i.e. gamma = 1).
    """
    z = np.asarray(logits, np.float64)
    y = one_hot64(labels, z.shape[-1])
    f = np.asarray(counts, np.float64) / np.sum(counts)
    tail = (f < lambda_).astype(np.float64)
    beta = np.ones_like(z) if beta is None else beta
    out = []
    for zi, yi, bi in zip(z, y, beta, strict=True):
        w = 1.0 - bi * tail * (1.0 - yi)
        denominator = np.sum(w * np.exp(zi))
        out.append(-np.sum(yi * (zi - np.log(denominator))))
    return np.array(out)


LAMBDA = 0.05  # classes 5..9 of CIFAR-10-LT (frequency < 5%) are tail.


class EqualizedLossTest(LossContractTests, TestCase):
    def test_matches_float64_reference(self):
        check_against_reference(
            self,
            EqualizedLoss(CIFAR10_LT_COUNTS, lambda_=LAMBDA, reduction=None),
            lambda y, z: equalized_crossentropy(
                y, z, CIFAR10_LT_COUNTS, 1.0, LAMBDA
            ),
            lambda y, z: reference_loss(y, z, CIFAR10_LT_COUNTS, LAMBDA),
        )

    def test_default_lambda_is_uniform_frequency(self):
        labels, logits = random_batch()
        expected = reference_loss(labels, logits, CIFAR10_LT_COUNTS, 0.1)
        loss = EqualizedLoss(CIFAR10_LT_COUNTS, reduction=None)
        self.assertAllClose(loss(labels, logits), expected, rtol=1e-5)
        # 1077 / 12406 = 0.087 < 0.1: classes 3..9 are tail.
        self.assertAllClose(loss.tail, [0, 0, 0, 1, 1, 1, 1, 1, 1, 1])

    def test_no_suppression_is_crossentropy(self):
        labels, logits = random_batch()
        ce = keras.losses.sparse_categorical_crossentropy(
            labels, logits, from_logits=True
        )
        for kwargs in ({"gamma": 0.0}, {"lambda_": 0.0}):
            loss = EqualizedLoss(CIFAR10_LT_COUNTS, reduction=None, **kwargs)
            self.assertAllClose(loss(labels, logits), ce, rtol=1e-5)
        # A balanced set has no tail class under the default threshold.
        balanced = EqualizedLoss([10] * 10, reduction=None)
        self.assertAllClose(balanced(labels, logits), ce, rtol=1e-5)

    def test_head_examples_do_not_push_down_tail_logits(self):
        labels = np.array([0, 1, 7])
        _, logits = random_batch(batch=3)
        x = tf.Variable(logits)
        with tf.GradientTape() as tape:
            value = EqualizedLoss(CIFAR10_LT_COUNTS, lambda_=LAMBDA)(labels, x)
        grad = tape.gradient(value, x).numpy()
        self.assertAllEqual(grad[:2, 5:], np.zeros((2, 5)))
        self.assertTrue(np.all(grad[:2, :5] != 0))
        # A tail example keeps its own logit and suppresses the other tails.
        self.assertNotEqual(grad[2, 7], 0.0)
        self.assertAllEqual(grad[2, [5, 6, 8, 9]], np.zeros(4))

    def test_random_beta(self):
        # 3 classes, classes 1 and 2 tail: every per-example value must be
        # one of the 4 (beta_1, beta_2) outcomes, and several must occur.
        counts = [98, 1, 1]
        labels = np.zeros(256, int)
        logits = np.tile(np.array([[0.0, 1.0, 2.0]], np.float32), (256, 1))
        loss = EqualizedLoss(
            counts, gamma=0.5, lambda_=0.5, seed=7, reduction=None
        )
        values = loss(labels, logits).numpy()
        outcomes = {}
        for b1, b2 in itertools.product((0, 1), (0, 1)):
            beta = np.tile([[1.0, b1, b2]], (1, 1))
            outcomes[(b1, b2)] = reference_loss(
                [0], logits[:1], counts, 0.5, beta
            )[0]
        distance = np.min(
            np.abs(values[:, None] - np.array(list(outcomes.values()))[None]),
            axis=1,
        )
        self.assertAllClose(distance, np.zeros(256), atol=1e-5)
        seen = {
            k for k, v in outcomes.items() if np.any(np.abs(values - v) < 1e-5)
        }
        self.assertEqual(len(seen), 4)
        # About half of the draws drop class 2 (the largest term).
        kept_2 = np.isclose(values, outcomes[(0, 0)], atol=1e-5) | np.isclose(
            values, outcomes[(1, 0)], atol=1e-5
        )
        self.assertBetween(kept_2.mean(), 0.3, 0.7)
        # The same seed replays the same draws; later calls draw anew.
        replay = EqualizedLoss(
            counts, gamma=0.5, lambda_=0.5, seed=7, reduction=None
        )
        self.assertAllClose(replay(labels, logits), values)
        self.assertNotAllClose(loss(labels, logits), values)

    def test_random_beta_in_tf_function(self):
        loss = EqualizedLoss([98, 1, 1], gamma=0.5, lambda_=0.5, seed=1)
        logits = np.tile(np.array([[0.0, 1.0, 2.0]], np.float32), (64, 1))
        step = tf.function(lambda z: loss(np.zeros(64), z))
        first, second = step(logits), step(logits)
        self.assertNotAllClose(first, second)
        self.assertEqual(step.experimental_get_tracing_count(), 1)

    def make_loss(self, **kwargs):
        return EqualizedLoss(CIFAR10_LT_COUNTS, lambda_=LAMBDA, **kwargs)

    def reference(self, labels, logits):
        return reference_loss(labels, logits, CIFAR10_LT_COUNTS, LAMBDA)

    def test_zero_count_class_is_tail(self):
        labels, logits = random_batch(batch=8, classes=3)
        labels = labels % 2
        loss = EqualizedLoss([10, 5, 0], lambda_=0.01, reduction=None)
        self.assertAllClose(
            loss(labels, logits),
            reference_loss(labels, logits, [10, 5, 0], 0.01),
            rtol=1e-5,
        )

    def test_config(self):
        loss = EqualizedLoss(
            [100, 10, 1], gamma=0.9, lambda_=0.2, seed=3, name="eql"
        )
        revived = self.run_serialization_test(loss)
        self.assertEqual(loss.get_config()["class_counts"], [100.0, 10.0, 1.0])
        deterministic = EqualizedLoss([100, 10, 1], lambda_=0.2)
        revived = self.run_serialization_test(deterministic)
        labels, logits = random_batch(classes=3)
        self.assertAllClose(
            revived(labels, logits), deterministic(labels, logits)
        )

    def test_model_saving(self):
        check_compiled_model_round_trip(
            self, EqualizedLoss([100, 10, 1], lambda_=0.2), 3
        )

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "`gamma`"):
            EqualizedLoss([10, 1], gamma=1.5)
        with self.assertRaisesRegex(ValueError, "`lambda_`"):
            EqualizedLoss([10, 1], lambda_=-0.1)
        with self.assertRaisesRegex(ValueError, "`seed`"):
            EqualizedLoss([10, 1], gamma=0.5, seed=1.5)
        with self.assertRaisesRegex(ValueError, "negative"):
            EqualizedLoss([10, -1])
        loss = EqualizedLoss([1, 2, 3])
        with self.assertRaisesRegex(
            ValueError, "class counts have 3 classes but the logits have 4"
        ):
            loss([0, 1], np.zeros((2, 4), np.float32))
