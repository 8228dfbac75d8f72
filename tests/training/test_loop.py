"""Tests for `TrainingLoop`: what it saves, when it stops."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from la_keras.training import TrainingDivergedError
from la_keras.training import TrainingLoop
from la_keras.training import TrainingPreempted
from la_keras.training.loop import weights_finite
from tests.launch import helpers
from tests.test_case import TestCase

# The same as test_tensorflow_trainer_with_a_huge_learning_rate with the
# JAX step runner, in a `KERAS_BACKEND=jax` process.
_JAX_DIVERGES = """
import json
import numpy as np
import keras
assert keras.backend.backend() == "jax"
from la_keras.training import TrainingDivergedError, TrainingLoop
from la_keras.training.jax_trainer import JaxTrainer
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
schedule = keras.optimizers.schedules.PiecewiseConstantDecay([0], [0.0, 1e38])
trainer = JaxTrainer(
    model,
    keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    keras.optimizers.SGD(schedule),
)
rng = np.random.default_rng(0)
batch = (rng.normal(0, 100, (8, 4)).astype("float32"), rng.integers(0, 3, 8))
saved, losses = [], []
def train_data(epoch, skip):
    while True:
        yield batch
def save(step, epoch):
    saved.append(step)
    return f"ckpt-{step}.npz"
steps = trainer.dispatch_steps
def dispatch_steps(iterator, num_steps):
    losses.append(float(steps(iterator, num_steps)))
    return losses[-1]
trainer.dispatch_steps = dispatch_steps
loop = TrainingLoop(trainer, train_data, 4, 1, save, checkpoint_every_steps=1)
try:
    loop.run()
    error = None
except TrainingDivergedError as e:
    error = str(e)
kernel = np.asarray(model.trainable_variables[0].value)
print(json.dumps({"error": error, "saved": saved, "losses": losses,
                  "kernel_finite": bool(np.all(np.isfinite(kernel)))}))
"""


class _Model:
    """What the loop reads of a model: its trainable variables."""

    def __init__(self):
        self.trainable_variables = [
            keras.Variable(np.ones((3, 2), np.float32)),
            keras.Variable(np.zeros((2,), np.float32)),
            keras.Variable(np.int32(0), trainable=False),
        ]


class _FakeRunner:
    """A step runner whose weights turn to `bad_value` after `bad_step`.

    Every step returns a finite loss of 1.0, as a real step does when the
    update that overflows comes after the loss it was computed from.
    """

    def __init__(self, bad_step=None, bad_value=np.inf):
        self.step = 0
        self.model = _Model()
        self.train_accuracy = keras.metrics.Mean()
        self.learning_rate = 0.1
        self.bad_step = bad_step
        self.bad_value = bad_value

    def train_steps(self, iterator, num_steps):
        for _ in range(num_steps):
            next(iterator)
            self.step += 1
            if self.bad_step is not None and self.step > self.bad_step:
                kernel = self.model.trainable_variables[0]
                kernel.assign(np.full((3, 2), self.bad_value, np.float32))
        return float(num_steps)


def _batches(epoch, skip):
    return iter(range(skip, 10**6))


class _Saves:
    """A `save(step, epoch)` that names `.npz` checkpoints, as on JAX."""

    def __init__(self, runner):
        self.runner = runner
        self.saved = []

    def __call__(self, step, epoch):
        kernel = np.asarray(self.runner.model.trainable_variables[0])
        self.saved.append((step, epoch, bool(np.all(np.isfinite(kernel)))))
        return f"/run/checkpoints/ckpt-{step}.npz"


class WeightsFiniteTest(TestCase):
    def test_finite_and_not(self):
        model = _Model()
        self.assertTrue(weights_finite(model))
        for bad in (np.nan, np.inf, -np.inf):
            model.trainable_variables[1].assign([0.0, bad])
            self.assertFalse(weights_finite(model), bad)
        # Large but finite weights, whose sum would overflow, are fine.
        model.trainable_variables[1].assign([3e38, 3e38])
        self.assertTrue(weights_finite(model))


class NonFiniteWeightsTest(TestCase):
    def test_never_saves_non_finite_weights(self):
        for bad_value in (np.inf, np.nan):
            runner = _FakeRunner(bad_step=5, bad_value=bad_value)
            saves = _Saves(runner)
            loop = TrainingLoop(
                runner, _batches, 4, 3, saves, checkpoint_every_steps=2
            )
            with self.assertRaisesRegex(
                TrainingDivergedError,
                r"weights became NaN or inf by step 6.*"
                r"last good checkpoint \(/run/checkpoints/ckpt-4\.npz\)",
            ):
                loop.run()
            self.assertEqual(
                saves.saved, [(2, 0, True), (4, 1, True)], bad_value
            )
            self.assertEqual(
                loop.last_checkpoint, "/run/checkpoints/ckpt-4.npz"
            )

    def test_stop_request_does_not_save_non_finite_weights(self):
        runner = _FakeRunner(bad_step=1)
        saves = _Saves(runner)
        loop = TrainingLoop(
            runner, _batches, 4, 3, saves, stop_requested=lambda: True
        )
        with self.assertRaisesRegex(TrainingDivergedError, r"\(none\)"):
            loop.run()
        self.assertEqual(saves.saved, [])

    def test_tensorflow_trainer_with_a_huge_learning_rate(self):
        # A real `Trainer`: step 0 has learning rate 0, step 1 one of 1e38,
        # so step 1's loss (computed before its update) is finite and its
        # update overflows the weights to inf.
        from la_keras.training import CheckpointStore
        from la_keras.training import Trainer
        from la_keras.training.checkpoints import list_checkpoints

        strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
        with strategy.scope():
            model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
            schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
                [0], [0.0, 1e38]
            )
            optimizer = keras.optimizers.SGD(schedule)
        trainer = Trainer(
            strategy,
            model,
            keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            optimizer,
        )
        rng = np.random.default_rng(0)
        images = rng.normal(0, 100, (8, 4)).astype("float32")
        labels = rng.integers(0, 3, (8,))
        dataset = tf.data.Dataset.from_tensors((images, labels)).repeat()

        def train_data(epoch, skip):
            return iter(strategy.experimental_distribute_dataset(dataset))

        directory = os.path.join(self.get_temp_dir(), "checkpoints")
        store = CheckpointStore(directory, model=model, optimizer=optimizer)
        losses = []
        dispatch_steps = trainer.dispatch_steps

        def recorded(iterator, num_steps):
            losses.append(float(dispatch_steps(iterator, num_steps)))
            return losses[-1]

        trainer.dispatch_steps = recorded
        loop = TrainingLoop(
            trainer,
            train_data,
            4,
            1,
            lambda step, epoch: store.save(step),
            checkpoint_every_steps=1,
        )
        with self.assertRaisesRegex(
            TrainingDivergedError,
            r"by step 2.*last good checkpoint \(.*ckpt-1\)",
        ):
            loop.run()
        self.assertEqual(len(losses), 2)
        self.assertTrue(all(np.isfinite(losses)), losses)
        self.assertFalse(
            np.all(np.isfinite(model.trainable_variables[0].numpy()))
        )
        saved = list_checkpoints(directory)
        self.assertEqual([step for step, _ in saved], [1])
        reader = tf.train.load_checkpoint(saved[0][1])
        for name in reader.get_variable_to_shape_map():
            value = np.asarray(reader.get_tensor(name))
            if np.issubdtype(value.dtype, np.floating):
                self.assertTrue(np.all(np.isfinite(value)), name)

    def test_jax_trainer_with_a_huge_learning_rate(self):
        pytest.importorskip("jax")
        out = helpers.run_script(_JAX_DIVERGES, backend="jax")
        self.assertRegex(
            out["error"], r"by step 2.*last good checkpoint \(ckpt-1\.npz\)"
        )
        self.assertEqual(out["saved"], [1])
        self.assertEqual(len(out["losses"]), 2)
        self.assertTrue(all(np.isfinite(out["losses"])), out["losses"])
        self.assertFalse(out["kernel_finite"])


class StopRequestTest(TestCase):
    def _stopped(self, steps_per_epoch, checkpoint_every_steps, stops):
        """A loop of 2-step chunks stopped where `stops` (one answer per
        chunk) turns True; its saves and the `TrainingPreempted`."""
        runner = _FakeRunner()
        saves = _Saves(runner)
        stops = iter(stops)
        loop = TrainingLoop(
            runner,
            _batches,
            steps_per_epoch,
            2,
            saves,
            checkpoint_every_steps=checkpoint_every_steps,
            max_chunk_steps=2,
            stop_requested=lambda: next(stops),
        )
        with self.assertRaises(TrainingPreempted) as raised:
            loop.run()
        return saves, raised

    def test_stop_right_after_a_periodic_save_saves_once(self):
        saves, raised = self._stopped(6, 2, [False, True])
        # Steps 2 and 4 saved periodically; the stop at step 4 reuses it.
        self.assertEqual([s[0] for s in saves.saved], [2, 4])
        self.assertEqual(raised.exception.step, 4)
        self.assertEqual(
            raised.exception.checkpoint, "/run/checkpoints/ckpt-4.npz"
        )

    def test_stop_between_saves_saves_the_current_step(self):
        saves, raised = self._stopped(9, 4, [False, False, True])
        self.assertEqual([s[0] for s in saves.saved], [4, 6])
        self.assertEqual(raised.exception.step, 6)
