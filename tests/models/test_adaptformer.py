"""AdaptFormer (`--finetune=adaptformer`) on tiny local ViT and CLIP presets:
the module against a float64 reference, zero-init equality, what trains,
checkpoints, `.keras` files, and runs on TensorFlow and JAX that export
and serve what the Keras model computes."""

import os
import shutil
import tempfile

import keras
import numpy as np
import pytest
import tensorflow as tf

from la_keras.models import adaptformer
from la_keras.models import finetune
from la_keras.runs import run_state
from la_keras.runs.resolved import ResolvedConfig
from tests import serving_session
from tests.launch import helpers
from tests.launch import shared_runs
from tests.models.test_hub import PresetTestCase
from tests.models.test_hub import images
from tests.models.test_hub import predict
from tests.models.test_hub import save_presets
from tests.models.test_hub import step
from tests.numerics import assert_float32_close
from tests.test_case import TestCase

keras_hub = pytest.importorskip(
    "keras_hub", reason='keras-hub is not installed (pip install ".[hub]")'
)


def randomized(adapter, seed):
    """Every weight of `adapter` drawn at random."""
    rng = np.random.default_rng(seed)
    for variable in adapter.weights:
        variable.assign(rng.normal(0.5, 0.5, variable.shape).astype("float32"))
    return adapter


class AdapterTest(TestCase):
    def test_matches_float64_reference(self):
        x = np.random.default_rng(0).normal(size=(2, 5, 8))
        adapter = adaptformer.AdaptFormerAdapter(3)
        adapter.build(x.shape)
        randomized(adapter, 1)
        parts = {
            "layer_norm/gamma": adapter.layer_norm.gamma,
            "layer_norm/beta": adapter.layer_norm.beta,
            "down/kernel": adapter.down.kernel,
            "down/bias": adapter.down.bias,
            "up/kernel": adapter.up.kernel,
            "up/bias": adapter.up.bias,
            "scale": adapter.scale,
        }
        w = {k: np.asarray(v.numpy(), np.float64) for k, v in parts.items()}
        mean = x.mean(-1, keepdims=True)
        normed = (x - mean) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
        normed = normed * w["layer_norm/gamma"] + w["layer_norm/beta"]
        hidden = np.maximum(normed @ w["down/kernel"] + w["down/bias"], 0)
        expected = (hidden @ w["up/kernel"] + w["up/bias"]) * w["scale"]
        out = keras.ops.convert_to_numpy(adapter(x.astype("float32")))
        assert_float32_close(out, expected)

    def test_starts_at_zero_with_lifts_initialisation(self):
        keras.utils.set_random_seed(0)
        adapter = adaptformer.AdaptFormerAdapter(64)
        adapter.build((None, None, 768))
        self.assertAllEqual(adapter.up.kernel, np.zeros((64, 768)))
        self.assertEqual(float(adapter.scale.numpy()), 1.0)
        # Kaiming normal with a=sqrt(5): std 1 / sqrt(3 * 768).
        std = float(np.std(adapter.down.kernel.numpy()))
        self.assertAllClose(std, 1 / np.sqrt(3 * 768), rtol=0.05)
        x = np.ones((2, 3, 768), "float32")
        self.assertAllEqual(adapter(x), np.zeros_like(x))
        self.run_serialization_test(adapter)

    def test_bottleneck_width_is_lifts(self):
        # 2 ** max(0, int(log2(C / (2 L)))), as LIFT's ViT_Tuner.
        for classes, blocks, width in (
            (1000, 12, 32), (100, 12, 4), (8142, 24, 128), (10, 12, 1),
            (10, 2, 2), (10, 1, 4),
        ):  # fmt: skip
            self.assertEqual(
                adaptformer.bottleneck_width(classes, blocks), width
            )
        with self.assertRaisesRegex(ValueError, "`bottleneck`"):
            adaptformer.AdaptFormerAdapter(0)


class AdaptFormerModelTest(PresetTestCase):
    def loaded(self, name, **options):
        return super().loaded(name, classifier="normed", **options)

    def test_zero_init_equals_the_frozen_backbone(self):
        x = images()
        for name, blocks in (("vit", 2), ("clip", 1)):
            model = self.loaded(name)
            frozen = predict(model, x)
            adapted = finetune.prepare(model, "adaptformer")
            self.assertLen(adaptformer.adapters(adapted), blocks)
            self.assertAllEqual(predict(adapted, x), frozen)
            for i, adapter in enumerate(adaptformer.adapters(adapted)):
                randomized(adapter, i)
            self.assertNotAllClose(predict(adapted, x), frozen)

    def test_adapters_and_head_train_only(self):
        model = finetune.prepare(self.loaded("vit"), "adaptformer")
        # r = 2 ** int(log2(10 / 4)) = 2 at width 16: layer norm 32, down
        # 16 * 2 + 2, up 2 * 16 + 16, scale 1; two blocks; the 16 x 10 head.
        self.assertEqual(
            sum(int(np.prod(v.shape)) for v in model.trainable_weights),
            2 * (32 + 34 + 48 + 1) + 160,
        )
        before = {v.path: v.numpy().copy() for v in model.weights}
        x, labels = images(8), np.arange(8) % 10
        step(model, x, labels)
        step(model, x, labels)
        for variable in model.weights:
            moved = not np.array_equal(variable.numpy(), before[variable.path])
            expected = "adaptformer" in variable.path or (
                variable.path.startswith("logits/")
            )
            if "adaptformer" in variable.path and "layer_norm" in variable.path:
                continue  # no gradient while `up` was zero: decay only
            self.assertEqual(moved, expected, variable.path)

    def test_checkpoint_and_keras_file_round_trip(self):
        model = finetune.prepare(self.loaded("clip"), "adaptformer")
        for i, adapter in enumerate(adaptformer.adapters(model)):
            randomized(adapter, i)
        x = images()
        expected = predict(model, x)
        directory = self.get_temp_dir()
        path = tf.train.Checkpoint(model=model).save(f"{directory}/ckpt")
        fresh = finetune.prepare(self.loaded("clip"), "adaptformer")
        tf.train.Checkpoint(model=fresh).restore(path).assert_consumed()
        self.assertAllEqual(predict(fresh, x), expected)
        model.save(f"{directory}/adapted.keras")
        loaded = keras.saving.load_model(f"{directory}/adapted.keras")
        self.assertLen(adaptformer.adapters(loaded), 1)
        self.assertAllEqual(predict(loaded, x), expected)

    def test_refusals(self):
        with self.assertRaisesRegex(ValueError, "no transformer block") as e:
            finetune.prepare(self.loaded("resnet"), "adaptformer")
        self.assertNotIn("\n", str(e.exception))
        model = finetune.prepare(self.loaded("vit"), "adaptformer")
        with self.assertRaisesRegex(ValueError, "already has an AdaptFormer"):
            finetune.prepare(model, "adaptformer")


# One epoch of a tiny ViT preset with AdaptFormer and the cosine head.
def _run_flags(preset, model_dir):
    return shared_runs.run_flags(
        model_dir, helpers.SMOKE_FLAGS, model="hub:" + preset,
        finetune="adaptformer", classifier="cosine", epochs=1,
        train_batch_size=16,
    )  # fmt: skip


class AdaptFormerRunTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.vit = save_presets(cls.root)["vit"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def assert_serves_the_keras_model(self, model_dir):
        model, info, _ = run_state.restore_model(ResolvedConfig.read(model_dir))
        self.assertLen(adaptformer.adapters(model), 2)
        moved = [a.up.kernel.numpy() for a in adaptformer.adapters(model)]
        self.assertTrue(any(np.any(k != 0) for k in moved))
        pixels = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3))
        serving_session.assert_served_in_session(
            self, os.path.join(model_dir, "export"), model,
            pixels.astype(np.uint8), class_names=info.class_names,
        )  # fmt: skip

    def test_tensorflow_run_exports_with_the_adapters(self):
        model_dir = os.path.join(self.root, "tf")
        metrics = shared_runs.train_with(_run_flags(self.vit, model_dir))
        self.assertEqual(metrics["finetune"], "adaptformer")
        self.assertEqual(metrics["parameters"]["trainable"], 390)
        self.assert_serves_the_keras_model(model_dir)

    @pytest.mark.slow
    def test_jax_run_exports_with_the_adapters(self):
        pytest.importorskip("jax")
        model_dir = os.path.join(self.root, "jax")
        args = helpers.flag_args(_run_flags(self.vit, model_dir))
        result = helpers.run_module(
            "launch.train", args, extra_env={"KERAS_BACKEND": "jax",
                                             "JAX_PLATFORMS": "cpu"},
        )  # fmt: skip
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        result = helpers.run_module(
            "launch.export", [f"--model_dir={model_dir}"]
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assert_serves_the_keras_model(model_dir)
