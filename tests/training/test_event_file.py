"""Tests for la_keras.training.event_file: TensorBoard files without TF."""

import glob
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from la_keras.training import Summaries
from la_keras.training.event_file import EventFileWriter
from la_keras.training.event_file import crc32c
from tests.test_case import TestCase

_METADATA = summary_pb2.SummaryMetadata(
    plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars")
).SerializeToString()

_SCALARS = [
    ("loss", 0.25, 0),
    ("batch loss", 1.5, 1),
    ("accuracy", np.float64(0.123456789), 7),
    ("learning rate", 3, 2**40),
    ("negative step", -2.0, -5),
    ("nan", float("nan"), 8),
    ("inf", float("inf"), 9),
    ("-inf", np.float32("-inf"), 10),
    ("tensor", tf.constant(4.0), 11),
]


def _events(directory):
    (path,) = glob.glob(os.path.join(directory, "events.out.tfevents.*"))
    return path, list(tf.compat.v1.train.summary_iterator(path))


class EventFileWriterTest(TestCase):
    def setUp(self):
        super().setUp()
        self.ours = os.path.join(self.get_temp_dir(), "ours")
        self.theirs = os.path.join(self.get_temp_dir(), "theirs")
        with EventFileWriter(self.ours) as writer:
            for tag, value, step in _SCALARS:
                writer.scalar(tag, value, step)
        tf_writer = tf.summary.create_file_writer(self.theirs)
        with tf_writer.as_default():
            for tag, value, step in _SCALARS:
                tf.summary.write(
                    tag, tf.cast(value, tf.float32), step, metadata=_METADATA
                )
        tf_writer.close()

    def test_crc32c(self):
        self.assertEqual(crc32c(b"123456789"), 0xE3069283)
        self.assertEqual(crc32c(b""), 0)

    def test_file_name(self):
        path, _ = _events(self.ours)
        parts = os.path.basename(path).split(".")
        self.assertEqual(parts[:3], ["events", "out", "tfevents"])
        self.assertEqual(parts[-1], "v2")
        self.assertTrue(parts[3].isdigit())
        self.assertEqual(parts[-3], str(os.getpid()))

    def test_first_event(self):
        _, events = _events(self.ours)
        self.assertEqual(events[0].file_version, "brain.Event:2")
        self.assertGreater(events[0].wall_time, 0)
        self.assertFalse(events[0].HasField("summary"))

    def test_same_events_as_tensorflow(self):
        _, ours = _events(self.ours)
        _, theirs = _events(self.theirs)
        self.assertLen(ours, len(_SCALARS) + 1)
        self.assertLen(theirs, len(ours))
        for mine, expected in zip(ours[1:], theirs[1:], strict=True):
            self.assertGreater(mine.wall_time, 0)
            mine.ClearField("wall_time")
            expected.ClearField("wall_time")
            self.assertEqual(mine.step, expected.step)
            (value,) = mine.summary.value
            (expected_value,) = expected.summary.value
            self.assertEqual(value.tag, expected_value.tag)
            self.assertEqual(value.metadata.plugin_data.plugin_name, "scalars")
            self.assertEqual(value.metadata, expected_value.metadata)
            self.assertEqual(value.tensor, expected_value.tensor)
            # Byte for byte the same serialized event, wall_time aside.
            self.assertEqual(
                mine.SerializeToString(deterministic=True),
                expected.SerializeToString(deterministic=True),
            )

    def test_values_round_trip(self):
        _, events = _events(self.ours)
        for event, (tag, value, step) in zip(events[1:], _SCALARS, strict=True):
            self.assertEqual(event.step, step)
            (summary_value,) = event.summary.value
            self.assertEqual(summary_value.tag, tag)
            got = float(tf.make_ndarray(summary_value.tensor))
            want = float(np.float32(value))
            if math.isnan(want):
                self.assertTrue(math.isnan(got))
            else:
                self.assertEqual(got, want)

    def test_tfrecord_crcs_verify(self):
        path, _ = _events(self.ours)
        records = list(tf.data.TFRecordDataset(path).as_numpy_iterator())
        self.assertLen(records, len(_SCALARS) + 1)
        # A flipped byte makes TensorFlow's CRC check fail.
        with open(path, "rb") as f:
            data = bytearray(f.read())
        data[-6] ^= 0xFF
        bad = os.path.join(self.get_temp_dir(), "bad.tfevents")
        with open(bad, "wb") as f:
            f.write(bytes(data))
        with self.assertRaises(tf.errors.DataLossError):
            list(tf.data.TFRecordDataset(bad).as_numpy_iterator())

    def test_write_after_close_raises(self):
        writer = EventFileWriter(os.path.join(self.get_temp_dir(), "closed"))
        writer.close()
        writer.close()
        with self.assertRaisesRegex(ValueError, "closed"):
            writer.scalar("loss", 1.0, 1)
        with self.assertRaisesRegex(ValueError, "closed"):
            writer.flush()

    def test_non_scalar_raises(self):
        with EventFileWriter(os.path.join(self.get_temp_dir(), "x")) as w:
            with self.assertRaisesRegex(ValueError, "scalar"):
                w.scalar("loss", [1.0, 2.0], 1)


class SummariesTest(TestCase):
    def test_none_writes_nothing(self):
        directory = self.get_temp_dir()
        before = os.listdir(directory)
        summaries = Summaries(None)
        summaries.write(summaries.train, {"loss": 1.0}, 1)
        summaries.write(summaries.test, {"accuracy": 0.5}, 1)
        self.assertEqual(os.listdir(directory), before)

    def test_train_and_test(self):
        log_dir = os.path.join(self.get_temp_dir(), "log")
        summaries = Summaries(log_dir)
        summaries.write(summaries.train, {"loss": 1.0, "skipped": None}, 3)
        summaries.write(summaries.test, {"accuracy": 0.5}, 3)
        # Flushed after each write: readable while the writers are open.
        _, train = _events(os.path.join(log_dir, "train"))
        _, test = _events(os.path.join(log_dir, "test"))
        self.assertEqual([v.tag for v in train[1].summary.value], ["loss"])
        self.assertLen(train, 2)
        self.assertEqual(test[1].summary.value[0].tag, "accuracy")
        self.assertEqual(test[1].step, 3)


_NO_TENSORFLOW = textwrap.dedent(
    """
    import sys

    class BlockTensorFlow:
        def find_spec(self, name, path=None, target=None):
            if name == "tensorflow" or name.startswith("tensorflow."):
                raise ImportError(f"{name} is blocked")
            return None

    sys.meta_path.insert(0, BlockTensorFlow())
    import la_keras.training.event_file as event_file

    with event_file.EventFileWriter(sys.argv[1]) as writer:
        writer.scalar("loss", 0.5, 1)
    assert not any(m.split(".")[0] == "tensorflow" for m in sys.modules)
    """
)


class NoTensorFlowTest(TestCase):
    def test_writes_without_tensorflow(self):
        directory = os.path.join(self.get_temp_dir(), "no_tf")
        root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        subprocess.run(
            [sys.executable, "-c", _NO_TENSORFLOW, directory],
            check=True,
            cwd=root,
            env={**os.environ, "PYTHONPATH": root, "KERAS_BACKEND": "jax"},
            timeout=120,
        )
        _, events = _events(directory)
        self.assertLen(events, 2)
        self.assertEqual(events[1].summary.value[0].tag, "loss")
        self.assertEqual(
            float(tf.make_ndarray(events[1].summary.value[0].tensor)), 0.5
        )
