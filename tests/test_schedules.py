"""Tests for la_keras.schedules against a float64 numpy reference."""

import keras
import numpy as np

from la_keras import schedules
from tests.test_case import TestCase


def reference_lr(step, steps_per_epoch, base, schedule):
    """The official `LearningRateSchedule.__call__`, in float64 numpy."""
    lr_epoch = np.asarray(step, np.float64) / steps_per_epoch
    mult0, warmup_end = schedule[0]
    lr = base * mult0 * lr_epoch / warmup_end
    for mult, start in schedule:
        lr = np.where(lr_epoch >= start, base * mult, lr)
    return lr


class WarmupStepScheduleTest(TestCase):
    def test_matches_numpy_reference_cifar10(self):
        official = schedules.OFFICIAL_SCHEDULES["cifar10-lt"]
        steps_per_epoch = int(12406 / 128)  # 96, as the official main.py
        lr = schedules.WarmupStepSchedule(
            0.1, steps_per_epoch, official["schedule"]
        )
        steps = np.arange(0, official["epochs"] * steps_per_epoch, 37)
        boundaries = np.array([20, 604, 926, 1128]) * steps_per_epoch
        steps = np.concatenate(
            [steps, boundaries - 1, boundaries, boundaries + 1]
        )
        actual = keras.ops.convert_to_numpy(lr(steps))
        expected = reference_lr(
            steps, steps_per_epoch, 0.1, official["schedule"]
        )
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-8)

    def test_hand_computed_values_cifar100(self):
        official = schedules.OFFICIAL_SCHEDULES["cifar100-lt"]
        self.assertEqual(official["epochs"], 1419)
        lr = schedules.WarmupStepSchedule(0.1, 84, official["schedule"])
        at = lambda epoch: float(lr(int(epoch * 84)))  # noqa: E731
        self.assertAllClose(at(0), 0.0)
        self.assertAllClose(at(11), 0.05)  # half-way through 22 warm-up epochs
        self.assertAllClose(at(22), 0.1)
        self.assertAllClose(at(690), 0.1)
        self.assertAllClose(at(691), 0.01)
        self.assertAllClose(at(1059), 0.001)
        self.assertAllClose(at(1290), 0.0001)
        self.assertAllClose(at(1418), 0.0001)

    def test_no_warmup(self):
        lr = schedules.WarmupStepSchedule(0.2, 10, [(1.0, 0), (0.1, 5)])
        self.assertAllClose(float(lr(0)), 0.2)
        self.assertAllClose(float(lr(49)), 0.2)
        self.assertAllClose(float(lr(50)), 0.02)

    def test_inside_optimizer(self):
        lr = schedules.WarmupStepSchedule(0.1, 4, [(1.0, 2)])
        optimizer = keras.optimizers.SGD(lr)
        variable = keras.Variable(1.0)
        optimizer.apply_gradients([(keras.ops.ones(()), variable)])
        optimizer.apply_gradients([(keras.ops.ones(()), variable)])
        # steps 0 and 1: lr = 0.1 * step / 8.
        self.assertAllClose(float(variable.numpy()), 1.0 - 0.0 - 0.1 / 8)

    def test_serialization(self):
        lr = schedules.WarmupStepSchedule(0.1, 96, [(1.0, 20), (0.1, 604)])
        revived = self.run_serialization_test(lr)
        self.assertEqual(revived.schedule, ((1.0, 20.0), (0.1, 604.0)))
        self.assertAllClose(float(revived(96 * 10)), 0.05)
        optimizer = keras.optimizers.SGD(lr)
        restored = keras.optimizers.SGD.from_config(optimizer.get_config())
        self.assertIsInstance(
            restored._learning_rate, schedules.WarmupStepSchedule
        )

    def test_invalid_arguments(self):
        with self.assertRaisesRegex(ValueError, "strictly increasing"):
            schedules.WarmupStepSchedule(0.1, 10, [(1.0, 5), (0.1, 5)])
        with self.assertRaisesRegex(ValueError, "at least one"):
            schedules.WarmupStepSchedule(0.1, 10, [])
        with self.assertRaisesRegex(ValueError, "steps_per_epoch"):
            schedules.WarmupStepSchedule(0.1, 0, [(1.0, 5)])
        with self.assertRaisesRegex(ValueError, "base_learning_rate"):
            schedules.WarmupStepSchedule(-1.0, 10, [(1.0, 5)])
        with self.assertRaisesRegex(ValueError, "multipliers must be >= 0"):
            schedules.WarmupStepSchedule(0.1, 10, [(-1.0, 5)])


class ParseScheduleTest(TestCase):
    def test_flags_to_pairs(self):
        pairs = schedules.parse_schedule(20, ["604", "926"], ["0.1", "0.01"])
        self.assertEqual(pairs, ((1.0, 20.0), (0.1, 604.0), (0.01, 926.0)))

    def test_length_mismatch(self):
        with self.assertRaisesRegex(ValueError, "same length"):
            schedules.parse_schedule(20, ["604"], [])
