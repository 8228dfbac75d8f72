"""JaxTrainer and DeviceDataset on Keras's JAX backend (subprocesses).

The backend is fixed when keras is imported, so each check runs in a fresh
`KERAS_BACKEND=jax` process on the CPU. One step is compared with the
TensorFlow `Trainer` from the same weights and batch.
"""

import json
import os

import numpy as np
import pytest

from tests.launch import helpers
from tests.losses.test_ldam import reference_loss
from tests.numerics import assert_float32_close
from tests.test_case import TestCase

pytest.importorskip("jax")

_COMMON = """
import json, sys
import numpy as np
import keras
from la_keras.losses import LogitAdjustedLoss
from la_keras.models import cifar_resnet
COUNTS = [9, 7, 5, 4, 3, 2]

def model_and_batch():
    keras.utils.set_random_seed(0)
    model = cifar_resnet(8, 6, (16, 16, 3), 1e-4)
    rng = np.random.default_rng(0)
    images = rng.uniform(-0.5, 0.5, (8, 16, 16, 3)).astype("float32")
    labels = rng.integers(0, 6, (8,)).astype("int32")
    return model, images, labels

def optimizer():
    return keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
"""

_TF_STEP = (
    _COMMON
    + """
import tensorflow as tf
from la_keras.training import Trainer
strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
with strategy.scope():
    model, images, labels = model_and_batch()
    sgd = optimizer()
model.save_weights(sys.argv[1])
trainer = Trainer(strategy, model, LogitAdjustedLoss(COUNTS), sgd)
ds = tf.data.Dataset.from_tensors((images, labels)).repeat()
it = iter(strategy.experimental_distribute_dataset(ds))
loss = trainer.train_steps(it, 1)
np.savez(sys.argv[2], *[np.asarray(v) for v in model.variables])
print(json.dumps({"loss": loss, "step": trainer.step}))
"""
)

_JAX_STEP = (
    _COMMON
    + """
assert keras.backend.backend() == "jax"
from la_keras.training.jax_trainer import JaxTrainer
model, images, labels = model_and_batch()
model.load_weights(sys.argv[1])
trainer = JaxTrainer(model, LogitAdjustedLoss(COUNTS), optimizer())
loss = trainer.train_steps(iter([(images, labels)]), 1)
np.savez(sys.argv[2], *[np.asarray(v) for v in model.variables])
print(json.dumps({"loss": loss, "step": trainer.step}))
"""
)

_JAX_LOOP = """
import json
import numpy as np
import keras
assert keras.backend.backend() == "jax"
from la_keras.datasets import synthetic
from la_keras.losses import LogitAdjustedLoss
from la_keras.models import cifar_resnet
from la_keras.training import TrainingLoop
from la_keras.training.jax_data import DeviceDataset
from la_keras.training.jax_trainer import JaxTrainer
keras.utils.set_random_seed(0)
images, labels = synthetic.make_arrays(synthetic.TRAIN_COUNTS, seed=0)
data = DeviceDataset(images, labels, batch_size=8, seed=0)
model = cifar_resnet(8, 10, (32, 32, 3), 1e-4)
trainer = JaxTrainer(model, LogitAdjustedLoss(synthetic.TRAIN_COUNTS),
                     keras.optimizers.SGD(0.05, momentum=0.9))
saved, losses = [], []
class Hook:
    def on_epoch_begin(self, epoch):
        losses.append(None)
loop = TrainingLoop(trainer, data.epoch, data.steps_per_epoch, 6,
                    lambda step, epoch: saved.append((step, epoch)) or "x",
                    max_chunk_steps=2, epoch_hooks=[Hook()])
step = loop.run()
logits, y = trainer.predict([(images[:16] / 255.0 - 0.5, labels[:16])])
print(json.dumps({"step": step, "saved": saved, "epochs": len(losses),
                  "accuracy": float(trainer.train_accuracy.result()),
                  "logits_shape": list(logits.shape)}))
"""

# Training runs of the same model, batches and steps, in float64 (JAX's x64
# mode and Keras's floatx, in this subprocess only): argv[1] the prefix of
# the weight files written, argv[2] the epochs, then the runs, each a loop
# shape ("python" or "scan"). Prints each run's steps and train accuracy.
# The loss is Keras's cross-entropy, which computes in the logits' dtype
# (la_keras's losses compute in float32). See
# test_scanned_loop_equals_python_loop.
_JAX_FLOAT64_RUNS = """
import json, sys
import jax
jax.config.update("jax_enable_x64", True)
import numpy as np
import keras
keras.config.set_floatx("float64")
from la_keras.datasets import synthetic
from la_keras.models import cifar_resnet
from la_keras.training import TrainingLoop
from la_keras.training.jax_data import DeviceDataset
from la_keras.training.jax_trainer import JaxTrainer
images, labels = synthetic.make_arrays(synthetic.TRAIN_COUNTS, seed=0)
prefix, epochs, out = sys.argv[1], int(sys.argv[2]), {}
for run in sys.argv[3:]:
    keras.utils.set_random_seed(0)
    data = DeviceDataset(images, labels, batch_size=8, seed=0)
    model = cifar_resnet(8, 10, (32, 32, 3), 1e-4)
    np.savez(prefix + run + "_init.npz",
             *[np.asarray(v.value) for v in model.variables])
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    trainer = JaxTrainer(model, loss, keras.optimizers.SGD(0.01, momentum=0.9),
                         loop=run)
    # Chunks of 2 over 5 steps an epoch: 2, 2, 1, as the loop cuts them.
    loop = TrainingLoop(trainer, data.epoch, data.steps_per_epoch, epochs,
                        lambda step, epoch: "x", max_chunk_steps=2)
    step = loop.run()
    np.savez(prefix + run + ".npz",
             *[np.asarray(v.value) for v in model.variables])
    out[run] = [step, float(trainer.train_accuracy.result())]
print(json.dumps(out))
"""

_JAX_AUGMENT = """
import json
import numpy as np
from la_keras.training.jax_data import DeviceDataset
# One bright pixel at (8, 8) of a 16x16 image: its position after the crop
# (and the flip) gives the shift.
images = np.zeros((64, 16, 16, 1), np.uint8)
images[:, 8, 8, 0] = 255
data = DeviceDataset(images, np.zeros(64), batch_size=64, seed=1)
shifts, flips = set(), 0
for epoch in range(40):
    (batch, _), = list(data.epoch(epoch))
    batch = np.asarray(batch)[..., 0]
    assert batch.shape == (64, 16, 16), batch.shape
    for image in batch:
        rows, cols = np.nonzero(image > 0)
        if len(rows) == 0:
            shifts.add("lost")
            continue
        shifts.add((int(rows[0]) - 8, int(cols[0])))
print(json.dumps(sorted(map(str, shifts))))
"""

# Deferred re-weighting through a step runner, learning rate 0: the step's
# loss before and after `on_epoch_begin` switches the class weights. The
# same uint8 batch on both backends (TensorFlow gets it normalised as the
# JAX DeviceDataset makes it); the model is linear (no batch norm, no
# regularization), so the step's loss is the LDAM loss of its logits.
_DRW = """
import json, sys
import numpy as np
import keras
from la_keras.losses import LDAMLoss
COUNTS = [50, 20, 8, 3]
images = np.random.default_rng(0).integers(0, 256, (16, 4, 4, 1), np.uint8)
labels = (np.arange(16) % 4).astype("int32")

def build():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(4)]
    )
    loss = LDAMLoss(COUNTS, s=5.0, drw_start_epoch=1, drw_beta=0.9)
    return model, loss, keras.optimizers.SGD(0.0)

if keras.backend.backend() == "tensorflow":
    import tensorflow as tf
    from la_keras.training import Trainer
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    with strategy.scope():
        model, loss, sgd = build()
    trainer = Trainer(strategy, model, loss, sgd)
    x = images.astype("float32") / 255.0 - 0.5
    ds = tf.data.Dataset.from_tensors((x, labels)).repeat()
    batches = lambda: iter(strategy.experimental_distribute_dataset(ds))
else:
    from la_keras.training.jax_data import DeviceDataset
    from la_keras.training.jax_trainer import JaxTrainer
    data = DeviceDataset(images, labels, batch_size=16, crop_padding=0)
    model, loss, sgd = build()
    trainer = JaxTrainer(model, loss, sgd, loop=sys.argv[1])
    x, labels = (np.asarray(a) for a in next(data.epoch(0)))
    batches = lambda: data.epoch(0)  # the same (flipped) batch every time
out = {"labels": labels.tolist(), "losses": [], "weights": []}
for epoch in (0, 1, 2):
    out["weights"].append(loss.on_epoch_begin(epoch).tolist())
    out["losses"].append(trainer.train_steps(batches(), 1))
out["logits"] = np.asarray(model(x), np.float64).tolist()
print(json.dumps(out))
"""

# The orders of `DeviceDataset`'s epochs 0 and 1 for the labels in argv[1],
# with each sampler, and the images each batch holds (row 0 of image `i`
# is `i`, which neither the flip nor a crop of 0 moves).
_JAX_SAMPLER = """
import json, sys
import jax
import numpy as np
from la_keras.training.jax_data import DeviceDataset
from la_keras.seeds import epoch_seed
labels = np.array(json.loads(sys.argv[1]))
images = np.zeros((labels.size, 4, 4, 1), np.uint8)
images[:, 0, :, 0] = np.arange(labels.size)[:, None]
out = {}
for sampler in ("shuffle", "class_balanced"):
    data = DeviceDataset(
        images, labels, 8, seed=3, crop_padding=0, sampler=sampler
    )
    out[sampler] = []
    for epoch in (0, 1):
        batches = data.epoch(epoch)
        order = np.asarray(batches.order)
        rows, batch_labels = [], []
        for x, y in batches:
            rows += np.round((np.asarray(x)[:, 0, 0, 0] + 0.5) * 255).tolist()
            batch_labels += np.asarray(y).tolist()
        # Today's shuffle: a permutation from the epoch's key.
        key = jax.random.split(jax.random.PRNGKey(epoch_seed(3, epoch)))[1]
        shuffled = np.asarray(jax.random.permutation(key, labels.size))
        out[sampler].append({
            "order": order.tolist(), "rows": rows, "labels": batch_labels,
            "steps": data.steps_per_epoch,
            "is_shuffle": bool(np.array_equal(order, shuffled)),
        })
print(json.dumps(out))
"""


def _run(script, *args, backend="jax"):
    return helpers.run_script(script, *args, backend=backend)


class JaxTrainerTest(TestCase):
    def test_one_step_equals_the_tensorflow_step(self):
        tmp = self.get_temp_dir()
        weights = os.path.join(tmp, "start.weights.h5")
        tf_out = _run(
            _TF_STEP, weights, os.path.join(tmp, "tf.npz"), backend="tensorflow"
        )
        jax_out = _run(_JAX_STEP, weights, os.path.join(tmp, "jax.npz"))
        self.assertEqual(tf_out["step"], 1)
        self.assertEqual(jax_out["step"], 1)
        self.assertAllClose(jax_out["loss"], tf_out["loss"], rtol=1e-5)
        tf_vars = np.load(os.path.join(tmp, "tf.npz"))
        jax_vars = np.load(os.path.join(tmp, "jax.npz"))
        self.assertEqual(len(tf_vars.files), len(jax_vars.files))
        for name in tf_vars.files:
            assert_float32_close(jax_vars[name], tf_vars[name], name)

    # Slow (16 s). The default suite trains with JaxTrainer in the training
    # loop (test_train_jax.py SharedJaxRunTest: a checkpoint at the end of
    # each epoch) and checks the loop's cadence (test_loop_cadence.py).
    @pytest.mark.slow
    def test_training_loop_runs_the_jax_step(self):
        out = _run(_JAX_LOOP)
        steps_per_epoch = 46 // 8
        self.assertEqual(out["step"], 6 * steps_per_epoch)
        self.assertEqual(out["epochs"], 6)
        # One save at the end of each epoch, with the epoch count.
        self.assertEqual(
            out["saved"],
            [[steps_per_epoch * e, e] for e in range(1, 7)],
        )
        self.assertEqual(out["logits_shape"], [16, 10])
        self.assertGreater(out["accuracy"], 0.1)  # above chance (10 classes)

    def test_device_augmentation_is_the_official_crop_and_flip(self):
        shifts = _run(_JAX_AUGMENT)
        self.assertNotIn("lost", shifts)
        expected = set()
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                expected.add(str((dy, 8 + dx)))  # unflipped
                expected.add(str((dy, 15 - (8 + dx))))  # flipped
        self.assertEqual(set(shifts), expected)

    def _assert_same_training(self, epochs, first, second):
        """Runs `_JAX_FLOAT64_RUNS` of `first` and `second`; asserts they
        made the same steps, to float64 rounding (see below)."""
        prefix = os.path.join(self.get_temp_dir(), "weights_")
        out = helpers.run_script(
            _JAX_FLOAT64_RUNS, prefix, str(epochs), first, second,
            backend="jax",
        )  # fmt: skip
        self.assertEqual(out[first], out[second])  # steps, train accuracy
        self.assertEqual(out[first][0], 5 * epochs)
        loaded = {
            name: np.load(prefix + name + ".npz")
            for run in (first, second)
            for name in (run, run + "_init")
        }
        for archive in loaded.values():
            self.addCleanup(archive.close)
        self.assertEqual(loaded[first].files, loaded[second].files)
        for name in loaded[first].files:
            init = loaded[first + "_init"][name]
            np.testing.assert_array_equal(loaded[second + "_init"][name], init)
            trained = loaded[first][name]
            self.assertEqual(trained.dtype, np.float64, name)
            update = trained - init
            self.assertGreater(np.max(np.abs(update)), 0.0, name)
            scale = max(np.max(np.abs(update)), np.max(np.abs(trained)))
            np.testing.assert_allclose(
                loaded[second][name] - init, update, rtol=0,
                atol=1e-9 * scale, err_msg=name,
            )  # fmt: skip

    @pytest.mark.slow
    def test_scanned_loop_equals_python_loop(self):
        # The same batches (made inside the scan) and the same steps; the
        # two loops are compiled differently, so their sums are added in
        # other orders. What differs is what the 10 steps added to each
        # weight, so that is what is compared.
        #
        # In float32 that comparison cannot have a tolerance that holds on
        # every CPU: each step rounds the stored weights (an ulp of a batch
        # norm scale of 1 is 1.2e-7, next to updates of 1e-5 to 1e-3) and
        # reassociates the gradient sums (rounding relative to the terms
        # added, which cancel), and momentum and batch norm carry it on, by
        # amounts that depend on the instruction set the compiler targets
        # (2.5e-7 against updates of 1.9e-5 on one CPU). So the runs are
        # in float64: every rounding is 2**-53 = 1.1e-16 relative, 2**-29
        # (5e-10 times) that of float32. Ten steps of rounding the weights
        # add at most about 10 ulps of the largest weight, and the worst
        # float32 disagreement seen (1.3e-2 of the largest update) shrinks
        # by 5e-10 to below 1e-11 of it. The tolerance, 1e-9 of the largest
        # weight or update of each array, is 100 times that and holds on
        # any CPU (the two runs measured agree to 1.5e-16 of it); batches or
        # steps that differ change the updates by their own size, 1e5 times
        # the tolerance and more.
        self._assert_same_training(2, "python", "scan")

    def _check_drw_step_loss(self, backend, loop="python"):
        out = _run(_DRW, loop, backend=backend)
        counts = np.array([50, 20, 8, 3], np.float64)
        labels, logits = np.array(out["labels"]), np.array(out["logits"])
        # The official DRW weights (Cao et al.'s cifar_train.py), beta 0.9.
        balanced = (1.0 - 0.9) / (1.0 - np.power(0.9, counts))
        balanced = balanced / balanced.sum() * len(counts)
        before = reference_loss(labels, logits, counts, s=5.0).mean()
        after = reference_loss(
            labels, logits, counts, s=5.0, weight=balanced
        ).mean()
        # Far apart, next to the tolerance.
        self.assertGreater(abs(after - before), 1e-2 * before)
        self.assertAllClose(out["weights"][0], np.ones(4))
        self.assertAllClose(out["weights"][1], balanced, rtol=1e-6)
        # Before the switch, after it, and in the epoch after.
        np.testing.assert_allclose(
            out["losses"], [before, after, after], rtol=1e-5
        )

    def test_drw_reaches_the_tensorflow_step(self):
        self._check_drw_step_loss("tensorflow")

    def test_drw_reaches_the_jitted_jax_step(self):
        self._check_drw_step_loss("jax", "python")

    def test_drw_reaches_the_scanned_jax_step(self):
        self._check_drw_step_loss("jax", "scan")

    def test_unknown_loop_shape_is_refused(self):
        # Checked before anything needs the JAX backend: in this process.
        from la_keras.training.jax_trainer import JaxTrainer

        with self.assertRaisesRegex(ValueError, "Received: loop='while'"):
            JaxTrainer(None, None, None, loop="while")

    def test_class_balanced_epochs_are_those_of_tensorflow(self):
        # The same labels: the `test` split's, as `DatasetBuilder` reads it.
        from la_keras.datasets import DatasetBuilder
        from la_keras.datasets.sampling import class_balanced_order

        builder = DatasetBuilder(
            "test", "train", 8, True, seed=3, sampler="class_balanced"
        )
        labels = np.concatenate(
            [y for _, y in builder._dataset.batch(64).as_numpy_iterator()]
        )
        out = _run(_JAX_SAMPLER, json.dumps(labels.tolist()))
        for epoch in (0, 1):
            shuffled = out["shuffle"][epoch]
            self.assertTrue(shuffled["is_shuffle"])  # the default: as before
            self.assertEqual(sorted(shuffled["order"]), list(range(46)))
            balanced = out["class_balanced"][epoch]
            self.assertEqual(balanced["steps"], shuffled["steps"])
            order = class_balanced_order(labels, 3, epoch)
            self.assertEqual(balanced["order"], order.tolist())
            self.assertEqual(balanced["rows"], order[:40].tolist())
            tf_labels = np.concatenate(
                [y for _, y in builder.dataset_fn(None, epoch)]
            )
            self.assertEqual(balanced["labels"], tf_labels.tolist())
