"""Tests for la_keras.distribute and the Trainer's distributed scaling."""

import json
import os
from unittest import mock

import tensorflow as tf

from la_keras import distribute
from tests.launch import helpers
from tests.numerics import assert_float32_close
from tests.test_case import TestCase

# One process: 2 logical CPUs; the same steps on OneDevice and Mirrored.
_MIRRORED_SCRIPT = """
import json
import numpy as np
import tensorflow as tf
from la_keras import distribute
distribute.configure_logical_cpus(2)
import keras
from la_keras.losses import LogitAdjustedLoss
from la_keras.training import Trainer

x = np.random.default_rng(0).normal(size=(64, 8, 8, 3)).astype("float32")
y = np.random.default_rng(1).integers(0, 5, 64)

def run(strategy):
    keras.utils.set_random_seed(0)
    l2 = keras.regularizers.L2(1e-2)
    with strategy.scope():
        model = keras.Sequential([
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, kernel_regularizer=l2),
            keras.layers.ReLU(),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(5, kernel_regularizer=l2, bias_regularizer=l2),
        ])
        loss = LogitAdjustedLoss([40, 20, 10, 5, 1])
        optimizer = keras.optimizers.SGD(0.5, momentum=0.9, nesterov=True)
    trainer = Trainer(strategy, model, loss, optimizer)
    def dataset_fn(ctx):
        batch = ctx.get_per_replica_batch_size(16)
        return tf.data.Dataset.from_tensor_slices((x, y)).batch(batch)
    iterator = iter(strategy.distribute_datasets_from_function(dataset_fn))
    losses = [trainer.train_steps(iterator, 1) for _ in range(4)]
    return losses, [w.numpy().tolist() for w in model.weights]

one = run(tf.distribute.OneDeviceStrategy("/cpu:0"))
two = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]))
print(json.dumps({"one": one, "two": two,
                  "replicas": tf.distribute.MirroredStrategy(
                      ["/cpu:0", "/cpu:1"]).num_replicas_in_sync}))
"""


class GetStrategyTest(TestCase):
    def test_unknown_name(self):
        with self.assertRaisesRegex(
            ValueError, "Unknown strategy 'bogus'.*one_device"
        ):
            distribute.get_strategy("bogus")

    def test_one_device_and_mirrored_on_cpu(self):
        strategy = distribute.get_strategy("one_device")
        # On a CPU without GPUs: the default strategy (OneDeviceStrategy on
        # the CPU trains 2.2x slower), one replica.
        self.assertIs(strategy, tf.distribute.get_strategy())
        self.assertEqual(strategy.num_replicas_in_sync, 1)
        mirrored = distribute.get_strategy("mirrored")
        self.assertIsInstance(mirrored, tf.distribute.MirroredStrategy)
        self.assertGreaterEqual(mirrored.num_replicas_in_sync, 1)

    def test_auto(self):
        with mock.patch.dict(os.environ, {"TF_CONFIG": ""}):
            self.assertEqual(distribute.resolve_name("auto"), "one_device")
        config = {
            "cluster": {"worker": ["localhost:1", "localhost:2"]},
            "task": {"type": "worker", "index": 0},
        }
        with mock.patch.dict(os.environ, {"TF_CONFIG": json.dumps(config)}):
            self.assertEqual(
                distribute.resolve_name("auto"), "multi_worker_mirrored"
            )

    def test_bad_tf_config(self):
        with mock.patch.dict(os.environ, {"TF_CONFIG": "{not json"}):
            with self.assertRaisesRegex(
                ValueError, "TF_CONFIG is not valid JSON"
            ):
                distribute.resolve_name("auto")


class TpuTest(TestCase):
    def test_resolver_failure_is_clear(self):
        resolver = mock.Mock(
            side_effect=ValueError("Please provide a TPU Name")
        )
        with mock.patch.object(
            tf.distribute.cluster_resolver, "TPUClusterResolver", resolver
        ):
            with self.assertRaisesRegex(
                RuntimeError, "Could not find a TPU.*--tpu"
            ):
                distribute.get_strategy("tpu", tpu="my-tpu")
        resolver.assert_called_once_with(tpu="my-tpu")

    def test_connect_initialize_strategy(self):
        calls = []
        fake = object()
        patches = [
            mock.patch.object(
                tf.distribute.cluster_resolver,
                "TPUClusterResolver",
                lambda tpu: calls.append(("resolve", tpu)) or fake,
            ),
            mock.patch.object(
                tf.config,
                "experimental_connect_to_cluster",
                lambda r: calls.append(("connect", r)),
            ),
            mock.patch.object(
                tf.tpu.experimental,
                "initialize_tpu_system",
                lambda r: calls.append(("initialize", r)),
            ),
            mock.patch.object(
                tf.distribute,
                "TPUStrategy",
                lambda r: calls.append(("strategy", r)) or "strategy",
            ),
        ]
        for patch in patches:
            patch.start()
            self.addCleanup(patch.stop)
        self.assertEqual(
            distribute.get_strategy("tpu", "grpc://1.2.3.4:8470"), "strategy"
        )
        self.assertEqual(
            calls,
            [
                ("resolve", "grpc://1.2.3.4:8470"),
                ("connect", fake),
                ("initialize", fake),
                ("strategy", fake),
            ],
        )

    def test_initialize_failure_is_clear(self):
        with (
            mock.patch.object(
                tf.distribute.cluster_resolver,
                "TPUClusterResolver",
                mock.Mock(),
            ),
            mock.patch.object(tf.config, "experimental_connect_to_cluster"),
            mock.patch.object(
                tf.tpu.experimental,
                "initialize_tpu_system",
                side_effect=tf.errors.UnavailableError(None, None, "no TPU"),
            ),
        ):
            with self.assertRaisesRegex(RuntimeError, "initialize the TPU"):
                distribute.get_strategy("tpu", "my-tpu")


def _fake_strategy(task_type, task_id, cluster):
    resolver = mock.Mock(task_type=task_type, task_id=task_id)
    resolver.cluster_spec.return_value.as_dict.return_value = cluster
    return mock.Mock(cluster_resolver=resolver)


class ChiefTest(TestCase):
    def test_single_worker_is_chief(self):
        self.assertTrue(distribute.is_chief(tf.distribute.get_strategy()))
        self.assertTrue(distribute.is_chief(_fake_strategy(None, None, {})))

    def test_multi_worker(self):
        workers = {"worker": ["a:1", "b:2"]}
        self.assertTrue(
            distribute.is_chief(_fake_strategy("worker", 0, workers))
        )
        self.assertFalse(
            distribute.is_chief(_fake_strategy("worker", 1, workers))
        )
        with_chief = {"chief": ["c:0"], "worker": ["a:1"]}
        self.assertTrue(
            distribute.is_chief(_fake_strategy("chief", 0, with_chief))
        )
        self.assertFalse(
            distribute.is_chief(_fake_strategy("worker", 0, with_chief))
        )

    def test_worker_dirs(self):
        model_dir = self.get_temp_dir()
        chief = _fake_strategy("worker", 0, {"worker": ["a:1", "b:2"]})
        other = _fake_strategy("worker", 1, {"worker": ["a:1", "b:2"]})
        self.assertEqual(distribute.worker_dir(model_dir, chief), model_dir)
        temp = distribute.worker_dir(model_dir, other)
        self.assertNotEqual(temp, model_dir)
        self.assertTrue(os.path.isdir(temp))
        distribute.cleanup_worker_dir(temp, model_dir, other)
        self.assertFalse(os.path.exists(temp))
        distribute.cleanup_worker_dir(model_dir, model_dir, other)
        self.assertTrue(os.path.isdir(model_dir))


class MirroredMatchesOneDeviceTest(TestCase):
    def test_same_loss_and_weights(self):
        out = helpers.run_script(_MIRRORED_SCRIPT)
        self.assertEqual(out["replicas"], 2)
        losses_one, weights_one = out["one"]
        losses_two, weights_two = out["two"]
        self.assertAllClose(losses_one, losses_two, rtol=1e-5)
        for a, b in zip(weights_one, weights_two, strict=True):
            assert_float32_close(b, a)
        # Four steps with lr 0.5 moved the weights: the test is not vacuous.
        self.assertGreater(abs(losses_one[0] - losses_one[-1]), 1e-3)
