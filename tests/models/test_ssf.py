"""SSF (`--finetune=ssf`): the layers against float64 references, the
rebuilt model, what trains, and the merge into the normalisation layers."""

import os
import tempfile

import keras
import numpy as np

from la_keras.models import finetune
from la_keras.models import ssf
from tests.models.test_finetune import HEAD_PARAMS
from tests.models.test_finetune import batch
from tests.models.test_finetune import build
from tests.models.test_finetune import logits
from tests.models.test_finetune import snapshot
from tests.models.test_finetune import train
from tests.models.test_finetune import trainable_count
from tests.numerics import assert_float32_close
from tests.test_case import TestCase


def values(layer):
    return {v.name: np.asarray(v.numpy(), np.float64) for v in layer.weights}


def randomize(layer, seed):
    """Non-trivial weights (statistics, affine parts and SSF's)."""
    rng = np.random.default_rng(seed)
    for variable in layer.weights:
        value = rng.normal(1.0, 0.3, variable.shape)
        if "variance" in variable.name:
            value = np.abs(value)
        variable.assign(value.astype("float32"))


def conditioned(model, images):
    """`model` with its batch norm statistics set to those of `images`, so
    that a random backbone in inference mode passes gradients on."""
    norms = [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    for layer in norms:
        layer.momentum = 0.0
    model(images, training=True)
    for layer in norms:
        layer.momentum = 0.99
    return model


class SSFLayersTest(TestCase):
    def test_batch_normalization_in_inference_mode(self):
        layer = ssf.SSFBatchNormalization(epsilon=1e-3)
        x = np.random.default_rng(0).normal(2, 3, (4, 3, 3, 5))
        layer.build(x.shape)
        randomize(layer, 1)
        w = values(layer)
        expected = (x - w["moving_mean"]) / np.sqrt(
            w["moving_variance"] + 1e-3
        ) * w["gamma"] + w["beta"]
        expected = w["ssf_scale"] * expected + w["ssf_shift"]
        for training in (False, True):
            out = layer(x.astype("float32"), training=training)
            assert_float32_close(keras.ops.convert_to_numpy(out), expected)
        # The statistics never update.
        self.assertAllClose(values(layer)["moving_mean"], w["moving_mean"])

    def test_layer_and_group_normalization(self):
        x = np.random.default_rng(2).normal(1, 2, (3, 4, 6))
        layer = ssf.SSFLayerNormalization(epsilon=1e-5)
        layer.build(x.shape)
        randomize(layer, 3)
        w = values(layer)
        mean = x.mean(-1, keepdims=True)
        normed = (x - mean) / np.sqrt(x.var(-1, keepdims=True) + 1e-5)
        expected = w["ssf_scale"] * (normed * w["gamma"] + w["beta"])
        out = layer(x.astype("float32"))
        assert_float32_close(
            keras.ops.convert_to_numpy(out), expected + w["ssf_shift"]
        )
        group = ssf.SSFGroupNormalization(groups=2)
        group.build(x.shape)
        self.assertEqual(group.ssf_scale.shape, (6,))

    def test_initialisation_and_serialization(self):
        keras.utils.set_random_seed(0)
        layer = ssf.SSFBatchNormalization()
        layer.build((None, 4, 4, 512))
        scale = keras.ops.convert_to_numpy(layer.ssf_scale)
        shift = keras.ops.convert_to_numpy(layer.ssf_shift)
        # N(1, 0.02) and N(0, 0.02): 512 draws, 5 standard errors.
        self.assertAllClose(scale.mean(), 1.0, atol=5 * 0.02 / 512**0.5)
        self.assertAllClose(shift.std(), 0.02, rtol=0.2)
        self.run_serialization_test(layer)


class AddSSFTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keras.utils.set_random_seed(5)
        cls.images = batch(4, seed=1)[0]
        cls.plain = build()
        cls.plain_before = snapshot(cls.plain)
        cls.model = finetune.prepare(cls.plain, "ssf")

    def test_one_ssf_per_normalization_and_what_trains(self):
        norms = [
            layer
            for layer in self.plain._flatten_layers()
            if isinstance(layer, keras.layers.BatchNormalization)
        ]
        layers = ssf.ssf_layers(self.model)
        self.assertLen(layers, len(norms))
        channels = sum(int(layer.gamma.shape[0]) for layer in norms)
        self.assertEqual(
            trainable_count(self.model), 2 * channels + HEAD_PARAMS
        )
        names = {w.path.split("/")[-1] for w in self.model.trainable_weights}
        self.assertEqual(names, {"ssf_scale", "ssf_shift", "kernel", "bias"})
        # The model passed in is unchanged; the copy starts from its weights.
        for path, value in snapshot(self.plain).items():
            self.assertAllEqual(value, self.plain_before[path])
        copied = snapshot(self.model)
        for path, value in self.plain_before.items():
            self.assertAllEqual(copied[path], value)

    def test_unit_scales_give_the_frozen_backbone(self):
        model = finetune.prepare(build(), "ssf")
        plain_logits = logits(model, self.images)
        for layer in ssf.ssf_layers(model):
            layer.ssf_scale.assign(np.ones(layer.ssf_scale.shape))
            layer.ssf_shift.assign(np.zeros(layer.ssf_shift.shape))
        self.assertNotAllClose(logits(model, self.images), plain_logits)
        plain = finetune.merged(model)
        self.assertEmpty(ssf.ssf_layers(plain))
        self.assertAllClose(
            logits(model, self.images), logits(plain, self.images), atol=1e-6
        )

    def test_training_moves_ssf_and_head_only(self):
        model = finetune.prepare(conditioned(build(), batch()[0]), "ssf")
        before = snapshot(model)
        train(model, steps=2)
        for path, value in snapshot(model).items():
            moved = not np.array_equal(value, before[path])
            expected = path.endswith(("ssf_scale", "ssf_shift")) or (
                path.startswith("logits/")
            )
            self.assertEqual(moved, expected, path)

    def test_merged_equals_the_ssf_model(self):
        merged = finetune.merged(self.model)
        self.assertEmpty(ssf.ssf_layers(merged))
        self.assertEqual(merged.count_params(), self.plain.count_params())
        assert_float32_close(
            logits(merged, self.images),
            logits(self.model, self.images),
        )

    def test_keras_file_round_trip(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "ssf.keras")
            self.model.save(path)
            loaded = keras.saving.load_model(path)
        self.assertLen(ssf.ssf_layers(loaded), len(ssf.ssf_layers(self.model)))
        self.assertAllEqual(
            logits(loaded, self.images), logits(self.model, self.images)
        )


class MergeLayerNormTest(TestCase):
    def test_layer_norm_backbone_merges(self):
        inputs = keras.Input((6,))
        x = keras.layers.Dense(8)(inputs)
        x = keras.layers.LayerNormalization(center=False)(x)
        x = keras.layers.Dense(4)(keras.layers.GroupNormalization(2)(x))
        backbone = keras.Model(inputs, x, name="backbone")
        images = keras.Input((6,))
        model = keras.Model(
            images, keras.layers.Dense(3, name="logits")(backbone(images))
        )
        adapted = ssf.add_ssf(model)
        self.assertLen(ssf.ssf_layers(adapted), 2)
        x = np.random.default_rng(0).normal(size=(5, 6)).astype("float32")
        merged = ssf.merge_ssf(adapted)
        assert_float32_close(logits(merged, x), logits(adapted, x))
