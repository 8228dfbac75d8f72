"""Tests for la_keras.training.CheckpointStore: damaged checkpoints."""

import glob
import os

import keras
import numpy as np
import tensorflow as tf

from la_keras.training import CheckpointStore
from la_keras.training import NoUsableCheckpointError
from la_keras.training.checkpoints import list_checkpoints
from tests.test_case import TestCase


def _store(directory, value=0.0, keep=3):
    variable = tf.Variable(value, name="v")
    return CheckpointStore(directory, max_to_keep=keep, v=variable), variable


def _truncate(prefix):
    (data,) = glob.glob(prefix + ".data-*")
    size = os.path.getsize(data)
    with open(data, "r+b") as f:
        f.truncate(size // 2)


class CheckpointStoreTest(TestCase):
    def setUp(self):
        super().setUp()
        self.dir = os.path.join(self.get_temp_dir(), "ckpts")
        store, variable = _store(self.dir)
        for step in (10, 20, 30):
            variable.assign(float(step))
            store.save(step)

    def _restore(self):
        store, variable = _store(self.dir, value=-1.0)
        path = store.restore_latest()
        return path, float(variable.numpy())

    def test_newest_intact_checkpoint(self):
        path, value = self._restore()
        self.assertEndsWith(path, "ckpt-30")
        self.assertEqual(value, 30.0)

    def test_truncated_newest_is_skipped(self):
        _truncate(os.path.join(self.dir, "ckpt-30"))
        with self.assertLogs(level="WARNING") as logs:
            path, value = self._restore()
        self.assertEndsWith(path, "ckpt-20")
        self.assertEqual(value, 20.0)
        self.assertTrue(any("ckpt-30" in line for line in logs.output))

    def test_missing_state_file_is_rebuilt(self):
        os.remove(os.path.join(self.dir, "checkpoint"))
        path, value = self._restore()
        self.assertEqual(value, 30.0)
        self.assertEqual(tf.train.latest_checkpoint(self.dir), path)

    def test_missing_newest_index_resumes_from_older(self):
        os.remove(os.path.join(self.dir, "ckpt-30.index"))
        path, value = self._restore()
        # Never step 0 while a checkpoint exists.
        self.assertEqual(value, 20.0)
        self.assertEqual(tf.train.latest_checkpoint(self.dir), path)

    def test_all_damaged_refuses_and_deletes_nothing(self):
        for step in (10, 20, 30):
            _truncate(os.path.join(self.dir, f"ckpt-{step}"))
        before = sorted(os.listdir(self.dir))
        with self.assertRaisesRegex(NoUsableCheckpointError, "damaged"):
            self._restore()
        self.assertEqual(sorted(os.listdir(self.dir)), before)

    def test_empty_folder(self):
        store, _ = _store(os.path.join(self.get_temp_dir(), "none"))
        self.assertIsNone(store.restore_latest())

    def test_rotation_after_a_verified_save(self):
        store, variable = _store(self.dir, keep=2)
        variable.assign(40.0)
        store.save(40)
        steps = [s for s, _ in list_checkpoints(self.dir)]
        self.assertEqual(steps, [40, 30])

    def test_model_and_optimizer(self):
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
        optimizer.build(model.trainable_variables)
        directory = os.path.join(self.get_temp_dir(), "model")
        store = CheckpointStore(directory, model=model, optimizer=optimizer)
        store.save(5)
        clone = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        clone_opt = keras.optimizers.SGD(0.1, momentum=0.9)
        clone_opt.build(clone.trainable_variables)
        restored = CheckpointStore(directory, model=clone, optimizer=clone_opt)
        self.assertEndsWith(restored.restore_latest(), "ckpt-5")
        np.testing.assert_array_equal(
            clone.layers[0].kernel.numpy(), model.layers[0].kernel.numpy()
        )
