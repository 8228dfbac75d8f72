"""The comparison losses in `la_keras.losses.catalogue`."""

import numpy as np

from la_keras.losses import BalancedSoftmaxLoss
from la_keras.losses import ClassBalancedLoss
from la_keras.losses import EqualizedLoss
from la_keras.losses import FocalLoss
from la_keras.losses import LDAMLoss
from la_keras.losses import build
from la_keras.losses import class_balanced_weights
from la_keras.losses import describe
from la_keras.losses import names
from tests.losses.baseline_checks import CIFAR10_LT_COUNTS
from tests.test_case import TestCase

BASELINES = (
    "ldam",
    "ldam_drw",
    "balanced_softmax",
    "equalized",
    "class_balanced",
    "class_balanced_focal",
    "focal",
)


class CatalogueBaselinesTest(TestCase):
    def test_registered_with_descriptions(self):
        for name in BASELINES:
            self.assertIn(name, names())
            self.assertTrue(describe()[name])
        self.assertIn("on_epoch_begin", describe()["ldam_drw"])

    def test_defaults(self):
        counts = CIFAR10_LT_COUNTS
        ldam = build("ldam", counts)
        self.assertIsInstance(ldam, LDAMLoss)
        self.assertEqual(
            (ldam.max_m, ldam.s, ldam.drw_start_epoch), (0.5, 30.0, None)
        )
        drw = build("ldam_drw", counts)
        self.assertEqual((drw.drw_start_epoch, drw.drw_beta), (160, 0.9999))
        self.assertIsInstance(
            build("balanced_softmax", counts), BalancedSoftmaxLoss
        )
        eql = build("equalized", counts)
        self.assertIsInstance(eql, EqualizedLoss)
        self.assertEqual((eql.gamma, eql.lambda_), (1.0, None))
        cb = build("class_balanced", counts)
        self.assertEqual((cb.loss_type, cb.beta), ("softmax", 0.9999))
        cbf = build("class_balanced_focal", counts)
        self.assertIsInstance(cbf, ClassBalancedLoss)
        self.assertEqual((cbf.loss_type, cbf.gamma), ("focal", 2.0))
        focal = build("focal", counts)
        self.assertIsInstance(focal, FocalLoss)
        self.assertEqual(focal.gamma, 2.0)

    def test_kwargs_are_passed(self):
        counts = CIFAR10_LT_COUNTS
        ldam = build("ldam", counts, max_m=0.3, s=10.0, reduction=None)
        self.assertEqual(
            (ldam.max_m, ldam.s, ldam.reduction), (0.3, 10.0, None)
        )
        drw = build("ldam_drw", counts, drw_start_epoch=5, drw_beta=0.999)
        self.assertAllClose(drw.on_epoch_begin(4), np.ones(10))
        self.assertAllClose(
            drw.on_epoch_begin(5),
            class_balanced_weights(counts, 0.999),
            rtol=1e-6,
        )
        eql = build("equalized", counts, gamma=0.9, lambda_=0.01, seed=3)
        self.assertEqual((eql.gamma, eql.lambda_, eql.seed), (0.9, 0.01, 3))
        self.assertEqual(build("class_balanced", counts, beta=0.99).beta, 0.99)
        cbf = build("class_balanced_focal", counts, beta=0.99, gamma=0.5)
        self.assertEqual((cbf.beta, cbf.gamma), (0.99, 0.5))
        self.assertEqual(build("focal", counts, gamma=1.0).gamma, 1.0)
        with self.assertRaises(TypeError):
            build("balanced_softmax", counts, tau=2.0)
