"""Tests for la_keras.serving: the exported SavedModel signature."""

import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from la_keras import serving
from la_keras.adjustment import log_adjustment
from la_keras.datasets import preprocess_images
from tests import serving_session
from tests.test_case import TestCase

PRIORS = np.array([0.6, 0.3, 0.08, 0.02])

_LOAD_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
loaded = tf.saved_model.load(sys.argv[1])
serve = loaded.signatures["serving_default"]
images = np.load(sys.argv[2])
out = serve(images=tf.constant(images))
print(json.dumps({
    "classes": out["classes"].numpy().tolist(),
    "logits": out["logits"].numpy().tolist(),
    "probabilities": out["probabilities"].numpy().tolist(),
    "inputs": {k: [v.dtype.name, v.shape.as_list()]
               for k, v in serve.structured_input_signature[1].items()},
}))
"""


def tiny_model():
    """A 4-class classifier of 32x32 RGB images, small enough to export."""
    return keras.Sequential(
        [
            keras.Input((32, 32, 3)),
            keras.layers.Conv2D(4, 3, strides=2),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4, bias_initializer="random_normal"),
        ]
    )


class TinyModelTestCase(TestCase):
    """`self.model`, a `tiny_model`; `self.images`, 16 random uint8 images
    of 32x32 drawn by `self.rng`; `self.raw`, the model's logits of them."""

    def setUp(self):
        super().setUp()
        self.model = tiny_model()
        self.rng = np.random.default_rng(0)
        self.images = self.rng.integers(0, 256, (16, 32, 32, 3))
        self.images = self.images.astype(np.uint8)
        inputs = preprocess_images(self.images, "cifar")
        self.raw = self.model(inputs, training=False).numpy()


class ExportSavedModelTest(TinyModelTestCase):
    def _load_in_subprocess(self, export_dir):
        images_path = os.path.join(self.get_temp_dir(), "images.npy")
        np.save(images_path, self.images)
        env = dict(
            os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""
        )
        result = subprocess.run(
            [sys.executable, "-c", _LOAD_SCRIPT, export_dir, images_path],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        return json.loads(result.stdout.strip().splitlines()[-1])

    def test_posthoc_adjustment_baked_in_fresh_process(self):
        export_dir = os.path.join(self.get_temp_dir(), "posthoc")
        serving.export_saved_model(
            self.model, export_dir, (32, 32, 3), "cifar", priors=PRIORS, tau=1.0
        )
        out = self._load_in_subprocess(export_dir)
        adjusted = self.raw - log_adjustment(PRIORS, 1.0)
        self.assertEqual(
            out["inputs"], {"images": ["uint8", [None, 32, 32, 3]]}
        )
        self.assertEqual(out["classes"], np.argmax(adjusted, -1).tolist())
        self.assertAllClose(out["logits"], adjusted, atol=1e-5)
        self.assertAllClose(
            out["probabilities"], tf.nn.softmax(adjusted).numpy(), atol=1e-5
        )
        # The adjustment changes some predictions for these priors.
        self.assertNotEqual(out["classes"], np.argmax(self.raw, -1).tolist())

    @pytest.mark.slow
    def test_served_like_tf_serving(self):
        """Restored into a session, as TF Serving and saved_model_cli do.

        Before the export tracked the variables its signature reads, both
        failed with "Could not find variable ... uninitialized".
        """
        export_dir = os.path.join(self.get_temp_dir(), "session")
        serving.export_saved_model(
            self.model, export_dir, (32, 32, 3), "cifar", priors=PRIORS, tau=1.0
        )
        expected = serving_session.expected_outputs(
            self.model, self.images, "cifar", PRIORS, 1.0
        )
        bad = np.zeros([1, 28, 28, 3], np.uint8)
        out = serving_session.run_in_session(export_dir, self.images, bad)
        serving_session.assert_served(self, out["outputs"], expected)
        self.assertIn("Cannot feed value of shape (1, 28, 28, 3)", out["bad"])
        self.assertEqual(
            {k: v.shape for k, v in out["empty"].items()},
            {"logits": (0, 4), "raw_logits": (0, 4),
             "probabilities": (0, 4), "classes": (0,)},
        )  # fmt: skip
        served = serving_session.run_saved_model_cli(export_dir, self.images)
        serving_session.assert_served(self, served, expected)

    def test_raw_logits_and_variables(self):
        export_dir = os.path.join(self.get_temp_dir(), "raw")
        serving.export_saved_model(self.model, export_dir, (32, 32, 3), "cifar")
        loaded = tf.saved_model.load(export_dir)
        out = loaded.signatures[serving.SIGNATURE](
            images=tf.constant(self.images)
        )
        self.assertEqual(
            set(out), {"logits", "raw_logits", "probabilities", "classes"}
        )
        self.assertEqual(out["classes"].dtype, tf.int64)
        self.assertAllClose(out["logits"], self.raw, atol=1e-5)
        self.assertAllClose(out["raw_logits"], self.raw, atol=1e-5)
        self.assertAllClose(loaded.priors.numpy(), np.full([4], 0.25))
        self.assertAllClose(float(loaded.tau.numpy()), 0.0)
        # `serve` is the signature's function.
        self.assertAllClose(
            loaded.serve(tf.constant(self.images))["logits"], out["logits"]
        )
        session = serving_session.run_in_session(
            export_dir, self.images, np.zeros([1, 32, 32, 4], np.uint8)
        )
        serving_session.assert_served(
            self,
            session["outputs"],
            serving_session.expected_outputs(self.model, self.images, "cifar"),
        )
        self.assertIn("feed value of shape (1, 32, 32, 4)", session["bad"])

    def test_imagenet_preprocessing_accepts_any_size(self):
        model = keras.Sequential(
            [
                keras.Input((224, 224, 3)),
                keras.layers.GlobalAveragePooling2D(),
                keras.layers.Dense(4),
            ]
        )
        export_dir = os.path.join(self.get_temp_dir(), "imagenet")
        serving.export_saved_model(model, export_dir, (224, 224, 3), "imagenet")
        loaded = tf.saved_model.load(export_dir)
        images = (
            np.random.default_rng(1)
            .integers(0, 256, (2, 100, 150, 3))
            .astype(np.uint8)
        )
        out = loaded.signatures[serving.SIGNATURE](images=tf.constant(images))
        self.assertEqual(out["logits"].shape, (2, 4))
        session = serving_session.run_in_session(
            export_dir, images, np.zeros([1, 0, 150, 3], np.uint8)
        )
        serving_session.assert_served(
            self,
            session["outputs"],
            serving_session.expected_outputs(model, images, "imagenet"),
        )
        self.assertIn("[batch, any, any, 3]", session["bad"])

    def test_prior_mismatch(self):
        with self.assertRaisesRegex(ValueError, "4 outputs"):
            serving.export_saved_model(
                self.model,
                os.path.join(self.get_temp_dir(), "bad"),
                (32, 32, 3),
                "cifar",
                priors=[0.5, 0.5],
                tau=1.0,
            )


_BAD_INPUTS_SCRIPT = """
import json, sys
import numpy as np
import tensorflow as tf
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
cases = {
    "no_batch_dim": np.zeros([32, 32, 3], np.uint8),
    "28x28": np.zeros([1, 28, 28, 3], np.uint8),
    "64x64": np.zeros([1, 64, 64, 3], np.uint8),
    "1x1": np.zeros([1, 1, 1, 3], np.uint8),
    "4_channels": np.zeros([1, 32, 32, 4], np.uint8),
    "float32": np.zeros([1, 32, 32, 3], np.float32),
    "rank5": np.zeros([1, 1, 32, 32, 3], np.uint8),
}
out = {}
for name, images in cases.items():
    try:
        serve(images=tf.constant(images))
        out[name] = "accepted"
    except (tf.errors.InvalidArgumentError, ValueError, TypeError) as e:
        out[name] = str(e)
empty = serve(images=tf.zeros([0, 32, 32, 3], tf.uint8))
out["empty"] = {k: v.shape.as_list() for k, v in empty.items()}
print(json.dumps(out))
"""


class ServingInputTest(TestCase):
    """A malformed request is an error for the caller, never an abort."""

    @pytest.mark.slow
    def test_bad_requests_in_fresh_process(self):
        export_dir = os.path.join(self.get_temp_dir(), "bad_inputs")
        serving.export_saved_model(
            tiny_model(),
            export_dir,
            (32, 32, 3),
            "cifar",
            priors=PRIORS,
            tau=1.0,
        )
        env = dict(
            os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""
        )
        result = subprocess.run(
            [sys.executable, "-c", _BAD_INPUTS_SCRIPT, export_dir],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
        )
        # Before the checks, the image without a batch dimension aborted
        # the process (SIGABRT in the oneDNN convolution).
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        out = json.loads(result.stdout.strip().splitlines()[-1])
        for name in ("no_batch_dim", "28x28", "64x64", "1x1", "4_channels",
                     "rank5"):  # fmt: skip
            self.assertIn(
                "must be uint8 of shape [batch, 32, 32, 3]", out[name]
            )
        self.assertIn("uint8", out["float32"])
        # Where a server restores the model, a refusal too (by the
        # session's check of the static shape).
        session = serving_session.run_in_session(
            export_dir, np.zeros([1, 32, 32, 3], np.uint8),
            np.zeros([1, 64, 64, 3], np.uint8),
        )  # fmt: skip
        self.assertIn("feed value of shape (1, 64, 64, 3)", session["bad"])
        self.assertEqual(
            out["empty"],
            {
                "logits": [0, 4],
                "raw_logits": [0, 4],
                "probabilities": [0, 4],
                "classes": [0],
            },
        )
