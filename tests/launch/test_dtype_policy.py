"""--dtype_policy: resolved once, kept on resume, applied to the model."""

import json
import os

import keras
import numpy as np
from absl import flags
from absl.testing import flagsaver

from la_keras import losses
from la_keras.runs import resolve
from la_keras.runs.resolved import ResolvedConfig
from tests.launch import helpers
from tests.test_case import TestCase

FLAGS = flags.FLAGS


def setUpModule():
    helpers.define_all_flags()


class DtypePolicyTest(TestCase):
    def test_auto_is_float32_on_cpu_and_keeps_a_runs_policy(self):
        model_dir = self.get_temp_dir()
        self.assertEqual(
            resolve.resolve_dtype_policy("auto", "auto", model_dir), "float32"
        )
        self.assertEqual(
            resolve.resolve_dtype_policy("mixed_bfloat16", "auto", model_dir),
            "mixed_bfloat16",
        )
        with open(os.path.join(model_dir, "flags.json"), "w") as f:
            json.dump({"dtype_policy": "mixed_bfloat16"}, f)
        # A run that started in bfloat16 (on a GPU, say) resumes in it.
        self.assertEqual(
            resolve.resolve_dtype_policy("auto", "auto", model_dir),
            "mixed_bfloat16",
        )
        # An explicit value is the user's; a change is then refused by the
        # resume check (dtype_policy is not result-neutral).
        self.assertEqual(
            resolve.resolve_dtype_policy("float32", "auto", model_dir),
            "float32",
        )

    def test_flags_resolve_and_old_runs_read_as_float32(self):
        model_dir = self.get_temp_dir()
        with flagsaver.flagsaver(
            dataset="test", model_dir=model_dir, dtype_policy="mixed_bfloat16"
        ):
            config = ResolvedConfig.from_flags(FLAGS)
        self.assertEqual(config.dtype_policy, "mixed_bfloat16")
        self.assertEqual(config.to_dict()["dtype_policy"], "mixed_bfloat16")
        flat = config.to_dict()
        del flat["dtype_policy"]  # a flags.json written before the flag
        self.assertEqual(ResolvedConfig.from_dict(flat).dtype_policy, "float32")

    def test_model_computes_in_bfloat16_with_a_float32_head(self):
        model_dir = self.get_temp_dir()
        with flagsaver.flagsaver(
            dataset="test",
            model="resnet8",
            model_dir=model_dir,
            dtype_policy="mixed_bfloat16",
        ):
            config = ResolvedConfig.from_flags(FLAGS)
        before = keras.config.dtype_policy().name
        model = config.build_model(3, (8, 8, 3))
        self.assertEqual(keras.config.dtype_policy().name, before)
        policies = {
            layer.name: layer.dtype_policy.name for layer in model.layers
        }
        self.assertEqual(policies["conv1"], "mixed_bfloat16")
        self.assertEqual(policies["logits"], "float32")
        self.assertTrue(
            all(w.dtype == "float32" for w in model.weights), model.weights
        )
        images = np.random.default_rng(0).normal(size=(4, 8, 8, 3))
        logits = model(images.astype("float32"))
        self.assertEqual(logits.dtype, "float32")
        # The logit-adjusted loss of those float32 logits, float64 reference.
        priors = np.array([0.6, 0.3, 0.1])
        labels = np.array([0, 1, 2, 0])
        value = losses.LogitAdjustedLoss(priors)(labels, logits)
        z = np.asarray(logits, np.float64) + np.log(priors)
        z -= z.max(axis=1, keepdims=True)
        log_softmax = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
        expected = -log_softmax[np.arange(4), labels].mean()
        self.assertAllClose(float(value), expected, rtol=1e-5)

        # float32 builds a float32 model.
        plain = config.replace(dtype_policy="float32").build_model(3, (8, 8, 3))
        self.assertEqual(
            {layer.dtype_policy.name for layer in plain.layers}, {"float32"}
        )
