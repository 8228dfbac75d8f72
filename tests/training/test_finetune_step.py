"""One fine-tuning step on JAX equals TensorFlow's, in each mode.

MobileNet v1 alpha 0.25 (the registry's pretrained form, random weights) at
32x32, prepared for `full`, `linear` and `lora` (adapters set non-zero, so
that the step goes through them), one SGD step of the logit-adjusted loss
from the same weights and batch in a `KERAS_BACKEND=tensorflow` and a
`KERAS_BACKEND=jax` process. The frozen variables are bit-identical to the
start on both backends. With batch norm frozen (`linear`, `lora`) every
variable after the step agrees to float32 rounding. In `full`, the
gradients pass back through 27 batch-norm layers in training mode over 8
images of random-weight features, which amplify the two backends'
different float32 summation orders: there each variable's update (after -
before) agrees within `FULL_UPDATE_RTOL` of its norm (measured: at most 2%
of it; a wrong step, e.g. a missing weight decay term or another learning
rate, is off by its whole size).
"""

import os

import numpy as np
import pytest

from tests.launch import helpers
from tests.numerics import assert_float32_close
from tests.test_case import TestCase

pytest.importorskip("jax")

FULL_UPDATE_RTOL = 0.1

_SCRIPT = """
import json, sys
import numpy as np
import keras
from la_keras.losses import LogitAdjustedLoss
from la_keras.models import finetune, registry

backend = keras.backend.backend()
out_dir = sys.argv[1]
COUNTS = [9, 7, 5, 4, 3, 2]
rng = np.random.default_rng(0)
images = rng.uniform(-0.5, 0.5, (8, 32, 32, 3)).astype("float32")
labels = rng.integers(0, 6, (8,)).astype("int32")
result = {}
if backend == "tensorflow":
    import tensorflow as tf
    from la_keras.training import Trainer
    strategy = tf.distribute.OneDeviceStrategy("/cpu:0")
    scope = strategy.scope
else:
    import contextlib
    from la_keras.training.jax_trainer import JaxTrainer
    scope = contextlib.nullcontext
# AdaptFormer needs a transformer: tests/models/test_adaptformer.py.
for mode in [m for m in finetune.MODES if m != "adaptformer"]:
  with scope():
      keras.utils.set_random_seed(0)
      model = registry.build("mobilenet", 6, (32, 32, 3), 5e-4, pretrained=True,
                             image_size=(32, 32), width=0.25)
      model = finetune.prepare(model, mode, lora_rank=4)
      for i, layer in enumerate(finetune.lora_layers(model)):
          b = np.random.default_rng(i).normal(0, 0.05, layer.lora_kernel_b.shape)
          layer.lora_kernel_b.assign(b.astype("float32"))
      # By path, not through a weights file: Keras saves a LoRA layer's
      # kernel merged and loads it with zeroed adapters.
      start = f"{out_dir}/{mode}.start.npz"
      if backend == "tensorflow":
          np.savez(start, **{v.path.replace("/", "|"): np.array(v)
                             for v in model.variables})
      else:
          with np.load(start) as saved:
              for v in model.variables:
                  v.assign(saved[v.path.replace("/", "|")])
      before = {v.path: np.array(v) for v in model.variables}
      optimizer = keras.optimizers.SGD(0.1, momentum=0.9)
      loss = LogitAdjustedLoss(COUNTS)
      if backend == "tensorflow":
          trainer = Trainer(strategy, model, loss, optimizer)
          ds = tf.data.Dataset.from_tensors((images, labels)).repeat()
          value = trainer.train_steps(
              iter(strategy.experimental_distribute_dataset(ds)), 1)
      else:
          trainer = JaxTrainer(model, loss, optimizer)
          value = trainer.train_steps(iter([(images, labels)]), 1)
      after = {v.path: np.array(v) for v in model.variables}
      np.savez(f"{out_dir}/{mode}.{backend}.npz", **{
          k.replace("/", "|"): v for k, v in after.items()})
      trainable = {v.path for v in model.trainable_variables}
      result[mode] = {
          "loss": float(value),
          "frozen_changed": [k for k in before if k not in trainable
                             and "moving" not in k
                             and not np.array_equal(before[k], after[k])],
          "moving_changed": [k for k in before if "moving" in k
                             and not np.array_equal(before[k], after[k])],
          "trainable_unchanged": [k for k in trainable
                                  if np.array_equal(before[k], after[k])],
          "trainable": sorted(trainable),
      }
print(json.dumps(result))
"""


def _load(out_dir, mode, what):
    with np.load(os.path.join(out_dir, f"{mode}.{what}.npz")) as arrays:
        return dict(arrays)


def _run(backend, out_dir):
    return helpers.run_script(_SCRIPT, out_dir, backend=backend)


class FinetuneStepTest(TestCase):
    # Slow (45 s: MobileNet in each mode, on both backends). The default
    # suite checks the JAX step against TensorFlow's on the CIFAR ResNet
    # (test_jax_trainer.py) and each fine-tuning mode on TensorFlow
    # (tests/models/test_finetune.py, tests/launch/test_finetune_runs.py).
    @pytest.mark.slow
    def test_one_step_of_each_mode_equals_tensorflow(self):
        out_dir = self.get_temp_dir()
        tf_out = _run("tensorflow", out_dir)
        jax_out = _run("jax", out_dir)
        for mode in ("full", "linear", "lora"):
            with self.subTest(mode=mode):
                tf_mode, jax_mode = tf_out[mode], jax_out[mode]
                self.assertEqual(tf_mode["trainable"], jax_mode["trainable"])
                self.assertAllClose(
                    jax_mode["loss"], tf_mode["loss"], rtol=1e-5
                )
                for out in (tf_mode, jax_mode):
                    self.assertEqual(out["frozen_changed"], [])
                    self.assertEqual(out["trainable_unchanged"], [])
                    # Batch norm trains (batch statistics) only in full.
                    self.assertEqual(
                        bool(out["moving_changed"]), mode == "full"
                    )
                self._check_variables(out_dir, mode)
        # What trains in each mode.
        trainable = {m: tf_out[m]["trainable"] for m in tf_out}
        self.assertTrue(all("logits" in p for p in trainable["linear"]))
        self.assertTrue(
            all("lora_" in p or "logits" in p for p in trainable["lora"])
        )
        self.assertGreater(len(trainable["full"]), len(trainable["lora"]))

    def _check_variables(self, out_dir, mode):
        start = _load(out_dir, mode, "start")
        tf_vars = _load(out_dir, mode, "tensorflow")
        jax_vars = _load(out_dir, mode, "jax")
        self.assertEqual(sorted(tf_vars), sorted(jax_vars))
        for name, expected in tf_vars.items():
            if mode != "full":
                assert_float32_close(jax_vars[name], expected, name)
                continue
            update = np.linalg.norm(expected - start[name])
            self.assertLessEqual(
                np.linalg.norm(jax_vars[name] - expected),
                FULL_UPDATE_RTOL * update + 1e-7,
                name,
            )
