"""Tests of `DatasetBuilder` on the synthetic `test` dataset."""

import numpy as np
import pytest
import tensorflow as tf

from la_keras.datasets import DatasetBuilder
from la_keras.datasets import load
from tests.test_case import TestCase


def _labels(dataset):
    return [y.numpy().tolist() for _, y in dataset]


class DatasetBuilderTest(TestCase):
    def test_batch_arithmetic(self):
        train = DatasetBuilder("test", "train", 8, training=True)
        self.assertEqual(train.num_examples, 46)
        self.assertTrue(train.drop_remainder)
        self.assertEqual(train.steps_per_epoch, 5)
        test = DatasetBuilder("test", "test", 8, training=False)
        self.assertFalse(test.drop_remainder)
        self.assertEqual(test.steps_per_epoch, 3)
        self.assertEqual(train.per_replica_batch_size(4), 2)
        with self.assertRaisesRegex(ValueError, "divisible"):
            train.per_replica_batch_size(3)

    def test_one_pass_is_one_epoch(self):
        train = DatasetBuilder("test", "train", 8, training=True)
        batches = list(train.build())
        self.assertLen(batches, train.steps_per_epoch)
        for images, labels in batches:
            self.assertEqual(images.shape, (8, 32, 32, 3))
            self.assertEqual(images.dtype, tf.float32)
            self.assertEqual(labels.dtype, tf.int64)

    def test_training_shuffles_whole_set_each_epoch(self):
        train = DatasetBuilder(
            "test", "train", 46, training=True, drop_remainder=False
        )
        dataset = train.build()
        first, second = _labels(dataset), _labels(dataset)
        _, expected = zip(
            *load("test", "train")[0].as_numpy_iterator(), strict=True
        )
        # Every image once per epoch, in a new order each epoch.
        self.assertEqual(sorted(first[0]), sorted(expected))
        self.assertEqual(sorted(second[0]), sorted(expected))
        self.assertNotEqual(first, second)
        self.assertNotEqual(first[0], list(expected))
        # The seed fixes the sequence of epoch orders.
        again = DatasetBuilder(
            "test", "train", 46, training=True, drop_remainder=False
        ).build()
        self.assertEqual(_labels(again), first)

    def test_evaluation_is_ordered_and_unaugmented(self):
        test = DatasetBuilder("test", "test", 8, training=False)
        images, labels = zip(*test.build(), strict=True)
        self.assertEqual([x.shape[0] for x in images], [8, 8, 4])
        raw_images, raw_labels = zip(
            *load("test", "test")[0].as_numpy_iterator(), strict=True
        )
        self.assertAllEqual(np.concatenate(labels), raw_labels)
        self.assertAllClose(
            np.concatenate(images), np.stack(raw_images) / 255.0 - 0.5
        )
        # Deterministic across passes.
        self.assertAllEqual(
            np.concatenate([x for x, _ in test.build()]),
            np.concatenate(images),
        )

    def test_training_augments(self):
        train = DatasetBuilder(
            "test", "train", 46, training=True, drop_remainder=False
        )
        images, _ = next(iter(train.build()))
        raw = np.stack(
            [x for x, _ in load("test", "train")[0].as_numpy_iterator()]
        )
        normalized = raw / 255.0 - 0.5
        # Some outputs are not any unaugmented image: crops moved them.
        moved = [
            not any(np.allclose(x, r, atol=1e-6) for r in normalized)
            for x in images.numpy()
        ]
        self.assertTrue(any(moved))
        self.assertAllInRange(images, -0.5, 0.5)

    def test_holdout_builder(self):
        holdout = DatasetBuilder(
            "test", "holdout", 4, training=False, holdout_fraction=0.25
        )
        self.assertEqual(
            holdout.num_examples, holdout.info.num_examples["holdout"]
        )
        self.assertEqual(
            sum(x.shape[0] for x, _ in holdout.build()), holdout.num_examples
        )

    def test_input_context_shards_and_batches_per_replica(self):
        builder = DatasetBuilder("test", "test", 4, training=False)
        seen = []
        for pipeline in range(2):
            context = tf.distribute.InputContext(
                num_input_pipelines=2,
                input_pipeline_id=pipeline,
                num_replicas_in_sync=4,
            )
            batches = list(builder.dataset_fn(context))
            self.assertTrue(all(x.shape[0] <= 1 for x, _ in batches))
            seen.append([x.numpy().tobytes() for x, _ in batches])
        # Each pipeline reads its own half; together the whole split.
        self.assertLen(seen[0], 10)
        self.assertLen(seen[1], 10)
        self.assertEmpty(set(seen[0]) & set(seen[1]))

    def test_mirrored_strategy_two_replicas(self):
        devices = tf.config.list_logical_devices("CPU")
        if len(devices) < 2:
            pytest.skip("TensorFlow initialized before the CPU was split")
        strategy = tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
        builder = DatasetBuilder("test", "train", 8, training=True)
        dataset = builder.build(strategy)
        steps = 0
        for images, labels in dataset:
            local = strategy.experimental_local_results(images)
            self.assertLen(local, 2)
            self.assertEqual([x.shape[0] for x in local], [4, 4])
            self.assertLen(strategy.experimental_local_results(labels), 2)
            steps += 1
        self.assertEqual(steps, builder.steps_per_epoch)

    def test_bad_batch_sizes(self):
        with self.assertRaisesRegex(ValueError, "argument `global_batch_size`"):
            DatasetBuilder("test", "train", 0, training=True)
        with self.assertRaisesRegex(ValueError, "drop_remainder=False"):
            DatasetBuilder("test", "train", 64, training=True)
        builder = DatasetBuilder(
            "test", "train", 64, True, drop_remainder=False
        )
        self.assertEqual(builder.steps_per_epoch, 1)


class EpochCacheTest(TestCase):
    """Training's epochs (`la_keras.runs.train_tf.train_data`) share one cache."""

    def _builder(self, reads=None):
        builder = DatasetBuilder("test", "train", 8, training=True, seed=3)
        if reads is not None:

            def count(image, label):
                reads.assign_add(1)
                return image, label

            builder._dataset = builder._dataset.map(count)
        return builder

    def _epochs(self, builder, epochs, skip=0, reset=False):
        """The batches of `epochs` as the training loop takes them."""
        from la_keras.runs import train_tf

        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
        epoch_data = train_tf.train_data(strategy, builder)
        out = []
        for epoch in epochs:
            if reset:
                builder.reset_cache()
            iterator = epoch_data(epoch, skip if epoch == epochs[0] else 0)
            steps = builder.steps_per_epoch
            steps -= skip if epoch == epochs[0] else 0
            batches = [next(iterator) for _ in range(steps)]
            out.append([(x.numpy(), y.numpy()) for x, y in batches])
        return out

    def test_source_read_once_for_all_epochs(self):
        reads = tf.Variable(0, dtype=tf.int64)
        builder = self._builder(reads)
        self._epochs(builder, [0, 1, 2])
        self.assertEqual(int(reads.numpy()), builder.num_examples)
        # As before: a new cache every epoch reads the source every epoch.
        reads.assign(0)
        self._epochs(self._builder(reads), [0, 1, 2], reset=True)
        self.assertEqual(int(reads.numpy()), 3 * builder.num_examples)

    def test_batches_are_those_of_a_fresh_pipeline_per_epoch(self):
        # Without `--deterministic`: the augmentation's draws are stateless,
        # seeded per batch from (seed, epoch), in any order of the parallel
        # map; TensorFlow's global seed is left as it is.
        cached = self._epochs(self._builder(), [0, 1, 2])
        fresh = self._epochs(self._builder(), [0, 1, 2], reset=True)
        # A run resumed mid-epoch in a new process: a new builder, 2
        # batches of epoch 1 skipped.
        resumed = self._epochs(self._builder(), [1, 2], skip=2)
        self.assertNotEqual(
            [y.tolist() for _, y in cached[0]],
            [y.tolist() for _, y in cached[1]],
        )
        for got, want in zip(
            [cached, resumed], [fresh, [fresh[1][2:], fresh[2]]], strict=True
        ):
            for got_epoch, want_epoch in zip(got, want, strict=True):
                self.assertLen(got_epoch, len(want_epoch))
                for (x, y), (want_x, want_y) in zip(
                    got_epoch, want_epoch, strict=True
                ):
                    np.testing.assert_array_equal(x, want_x)
                    np.testing.assert_array_equal(y, want_y)
