import keras
import numpy as np
import tensorflow as tf

from la_keras import metrics
from tests.test_case import TestCase


def reference(labels, logits, num_classes):
    predicted = logits.argmax(-1)
    recall = np.full(num_classes, np.nan)
    for c in range(num_classes):
        mask = labels == c
        if mask.any():
            recall[c] = (predicted[mask] == c).mean()
    return recall


def random_eval(n=200, classes=5, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes)).astype(np.float32)
    logits[np.arange(n), labels] += rng.normal(1.0, 1.0, n)
    return labels, logits


class PerClassAccuracyTest(TestCase):
    def test_matches_reference_over_batches(self):
        labels, logits = random_eval()
        metric = metrics.PerClassAccuracy(5)
        for start in range(0, 200, 64):
            metric.update_state(
                labels[start : start + 64], logits[start : start + 64]
            )
        self.assertAllClose(metric.result(), reference(labels, logits, 5))

    def test_absent_class_is_nan(self):
        metric = metrics.PerClassAccuracy(3)
        metric.update_state([0, 0, 1], [[1.0, 0, 0], [0, 1.0, 0], [0, 1, 0]])
        result = metric.result().numpy()
        self.assertAllClose(result[:2], [0.5, 1.0])
        self.assertTrue(np.isnan(result[2]))

    def test_reset_and_config(self):
        metric = metrics.PerClassAccuracy(3)
        metric.update_state([0], [[1.0, 0, 0]])
        metric.reset_state()
        self.assertTrue(np.all(np.isnan(metric.result().numpy())))
        self.run_serialization_test(metric)


class BalancedAccuracyTest(TestCase):
    def test_matches_reference(self):
        labels, logits = random_eval()
        metric = metrics.BalancedAccuracy(num_classes=5)
        metric.update_state(labels, logits)
        self.assertAllClose(
            metric.result(), np.nanmean(reference(labels, logits, 5))
        )

    def test_absent_classes_left_out(self):
        metric = metrics.BalancedAccuracy(num_classes=3)
        metric.update_state([0, 0, 1], [[1.0, 0, 0], [0, 1.0, 0], [0, 1, 0]])
        self.assertAllClose(metric.result(), 0.75)

    def test_label_shapes_and_sample_weight(self):
        labels, logits = random_eval(n=50, classes=4)
        base = metrics.BalancedAccuracy(4)
        base.update_state(labels, logits)
        for y in (labels[:, None], np.eye(4)[labels], labels.astype(np.int8)):
            metric = metrics.BalancedAccuracy(4)
            metric.update_state(y, logits)
            self.assertAllClose(metric.result(), base.result())
        # Zero weight removes examples.
        weight = (labels != 0).astype(np.float32)
        metric = metrics.BalancedAccuracy(4)
        metric.update_state(labels, logits, sample_weight=weight)
        recall = reference(labels, logits, 4)
        self.assertAllClose(metric.result(), recall[1:].mean())

    def test_differs_from_top1_on_imbalanced_data(self):
        labels = np.array([0] * 9 + [1])
        logits = np.tile([[1.0, 0.0]], (10, 1))
        metric = metrics.BalancedAccuracy(2)
        metric.update_state(labels, logits)
        self.assertAllClose(metric.result(), 0.5)

    def test_wrong_num_classes(self):
        with self.assertRaisesRegex(ValueError, "built for 3 classes"):
            metrics.BalancedAccuracy(3).update_state([0], [[1.0, 0.0]])

    def test_in_compile_and_keras_file(self):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile(
            "sgd",
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[metrics.BalancedAccuracy(3)],
        )
        x = np.random.rand(30, 4).astype(np.float32)
        y = np.random.randint(0, 3, 30)
        model.fit(x, y, epochs=1, verbose=0)
        result = model.evaluate(x, y, return_dict=True, verbose=0)
        expected = np.nanmean(reference(y, model.predict(x, verbose=0), 3))
        self.assertAllClose(result["balanced_accuracy"], expected)
        self.run_serialization_test(metrics.BalancedAccuracy(3))

    def test_mirrored_strategy_is_exact(self):
        labels, logits = random_eval(n=64, classes=5)
        cpus = tf.config.list_logical_devices("CPU")[:2]
        strategy = tf.distribute.MirroredStrategy([d.name for d in cpus])
        with strategy.scope():
            metric = metrics.BalancedAccuracy(5)
            shots = metrics.ShotAccuracy([500, 200, 50, 10, 5])
        ds = tf.data.Dataset.from_tensor_slices((logits, labels)).batch(16)

        @tf.function
        def step(z, y):
            def update(z, y):
                metric.update_state(y, z)
                shots.update_state(y, z)

            strategy.run(update, args=(z, y))

        for z, y in strategy.experimental_distribute_dataset(ds):
            step(z, y)
        recall = reference(labels, logits, 5)
        self.assertAllClose(metric.result(), recall.mean())
        result = shots.result()
        self.assertAllClose(result["many"], recall[:2].mean())
        self.assertAllClose(result["medium"], recall[2])
        self.assertAllClose(result["few"], recall[3:].mean())


class ShotAccuracyTest(TestCase):
    def test_groups(self):
        groups = metrics.shot_groups([5000, 101, 100, 20, 19, 0])
        self.assertAllEqual(groups, [0, 0, 1, 1, 2, 2])
        groups = metrics.shot_groups(
            [50, 10, 5], many_threshold=40, few_threshold=6
        )
        self.assertAllEqual(groups, [0, 1, 2])
        with self.assertRaisesRegex(ValueError, "few_threshold"):
            metrics.shot_groups([5, 1], many_threshold=1, few_threshold=5)

    def test_matches_reference(self):
        labels, logits = random_eval(n=300, classes=6)
        counts = [1000, 500, 60, 30, 10, 2]
        metric = metrics.ShotAccuracy(counts)
        metric.update_state(labels, logits)
        recall = reference(labels, logits, 6)
        result = metric.result()
        self.assertAllClose(result["many"], recall[:2].mean())
        self.assertAllClose(result["medium"], recall[2:4].mean())
        self.assertAllClose(result["few"], recall[4:].mean())

    def test_empty_group_is_nan(self):
        metric = metrics.ShotAccuracy([1000, 500])
        metric.update_state([0, 1], [[1.0, 0.0], [1.0, 0.0]])
        result = metric.result()
        self.assertAllClose(result["many"], 0.5)
        self.assertTrue(np.isnan(result["few"].numpy()))

    def test_config(self):
        metric = metrics.ShotAccuracy(
            [10, 200, 30], many_threshold=150, few_threshold=15
        )
        revived = self.run_serialization_test(metric)
        self.assertAllEqual(revived.groups, metric.groups)


def metric_factories():
    return {
        "PerClassAccuracy": lambda: metrics.PerClassAccuracy(4),
        "BalancedAccuracy": lambda: metrics.BalancedAccuracy(4),
        "ShotAccuracy": lambda: metrics.ShotAccuracy([500, 50, 10, 1]),
    }


INVALID_LABELS = {
    "too large": [0, 4, 1],
    "negative": [0, -1, 1],
    "not a whole number": [0.0, 2.5, 1.0],
}


class LabelCheckTest(TestCase):
    """Integer labels outside [0, num_classes) raise."""

    def setUp(self):
        super().setUp()
        self.logits = random_eval(n=3, classes=4)[1]

    def test_worked_example(self):
        with self.assertRaisesRegex(ValueError, r"\[0, 3\).*from 5 to 5"):
            metrics.BalancedAccuracy(3).update_state([5], [[1.0, 0.0, 0.0]])

    def test_invalid_labels_raise_eagerly_and_in_tf_function(self):
        for name, make in metric_factories().items():
            for case, values in INVALID_LABELS.items():
                bad = f"{values[1]:g}"
                with self.subTest(metric=name, case=case):
                    metric = make()
                    with self.assertRaisesRegex(
                        ValueError, rf"num_classes=4.*from {bad} to {bad}"
                    ):
                        metric.update_state(values, self.logits)
                    with self.assertRaisesRegex(
                        ValueError, rf"num_classes=4.*from {bad} to {bad}"
                    ):
                        metric.update_state(
                            np.asarray(values)[:, None], self.logits
                        )
                    update = tf.function(metric.update_state)
                    with self.assertRaisesRegex(
                        tf.errors.InvalidArgumentError,
                        rf"num_classes=4\.\].*from\] \[{bad}\] \[to\] \[{bad}\]",
                    ):
                        update(tf.constant(values, tf.float32), self.logits)

    def test_float_integer_and_one_hot_labels_still_work(self):
        labels = np.array([0, 3, 1])
        for name, make in metric_factories().items():
            expected = make()
            expected.update_state(labels, self.logits)
            for y in (
                labels.astype(np.float32),
                labels.astype(np.float32)[:, None],
                np.eye(4, dtype=np.float32)[labels],
            ):
                with self.subTest(
                    metric=name, shape=y.shape, dtype=str(y.dtype)
                ):
                    metric = make()
                    tf.function(metric.update_state)(y, self.logits)
                    self.assertAllClose(metric.result(), expected.result())

    def test_xla_makes_the_result_nan(self):
        # XLA drops TensorFlow assertions: the counts become NaN instead.
        metric = metrics.BalancedAccuracy(4)
        update = tf.function(metric.update_state, jit_compile=True)
        update(tf.constant([0.0, 1.0, 2.0]), self.logits)
        self.assertTrue(np.isfinite(metric.result().numpy()))
        update(tf.constant([0.0, 4.0, 2.0]), self.logits)
        self.assertTrue(np.isnan(metric.result().numpy()))
