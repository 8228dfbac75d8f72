"""`la_keras.runs.train_tf.train_data`: a run resumed mid-epoch sees the batches of
an uninterrupted one, on one replica and on two (MirroredStrategy over two
logical CPUs, in a subprocess: they must be set before TensorFlow starts)."""

from tests.launch import helpers
from tests.test_case import TestCase

_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
from la_keras import distribute
distribute.configure_logical_cpus(2)
from la_keras.datasets import DatasetBuilder
from la_keras.runs.train_tf import train_data

def steps(strategy, epoch, skip, sampler):
    builder = DatasetBuilder("test", "train", 8, training=True,
                             sampler=sampler)
    iterator = train_data(strategy, builder)(epoch, skip)
    labels = []
    for batch in iterator:
        parts = strategy.experimental_local_results(batch[1])
        labels.append(np.concatenate([p.numpy() for p in parts]).tolist())
    return labels

out = {}
for name, strategy in (
    ("one", tf.distribute.get_strategy()),
    ("two", tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])),
):
    for sampler in ("shuffle", "class_balanced"):
        out[f"{name}-{sampler}"] = [
            steps(strategy, 1, 0, sampler), steps(strategy, 1, 2, sampler)
        ]
print(json.dumps(out))
"""


class TrainDataTest(TestCase):
    def test_resumed_epoch_skips_global_steps(self):
        out = helpers.run_script(_SCRIPT)
        for key, (whole, resumed) in out.items():
            with self.subTest(key):
                self.assertGreater(len(whole), 3)
                # Each step's global batch (8 labels) as in the whole epoch.
                self.assertTrue(all(len(step) == 8 for step in whole))
                self.assertEqual(resumed, whole[2:])
