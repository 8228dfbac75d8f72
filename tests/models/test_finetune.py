"""Tests for the fine-tuning modes, the LoRA merge and the class-mean head.

Which weights a few SGD steps change in each mode, on MobileNet (alpha
0.25) at 32x32 with weight decay, so that a frozen weight that still
decayed, or a batch norm that still updated its statistics, would show.
"""

import warnings

import keras
import numpy as np

from la_keras.models import finetune
from la_keras.models import registry
from tests.models.test_applications import assert_weight_decay
from tests.numerics import assert_float32_close
from tests.test_case import TestCase

NUM_CLASSES = 7
RANK = 2
FEATURES = 256  # MobileNet's 1024 features at alpha 0.25
HEAD_PARAMS = FEATURES * NUM_CLASSES + NUM_CLASSES


def build(name="mobilenet"):
    return registry.build(
        name,
        NUM_CLASSES,
        (32, 32, 3),
        5e-4,
        pretrained=True,
        image_size=(32, 32),
        width=0.25 if name == "mobilenet" else None,
    )


def batch(size=8, seed=0):
    rng = np.random.default_rng(seed)
    images = rng.uniform(-0.5, 0.5, (size, 32, 32, 3)).astype("float32")
    return images, np.arange(size) % NUM_CLASSES


def snapshot(model):
    """`{path: array}` of every weight of `model` (batch norm statistics
    and LoRA adapters included)."""
    found = {w.path: np.array(w) for w in model.weights}
    assert len(found) == len(model.weights), "weight paths not unique"
    return found


def train(model, steps=3):
    """`steps` SGD steps (lr 0.1) on one batch, through Keras's step."""
    model.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=True,
    )
    images, labels = batch()
    for _ in range(steps):
        model.train_on_batch(images, labels)


def trainable_count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def statistics_count(model):
    """How many batch norm moving statistics `model` holds."""
    return sum(
        int(np.prod(w.shape))
        for w in model.weights
        if w.path.endswith(("moving_mean", "moving_variance"))
    )


def logits(model, images, training=False):
    return keras.ops.convert_to_numpy(model(images, training=training))


class FinetuneModesTest(TestCase):
    """Each mode trained once (setUpClass); the tests read what changed."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keras.utils.set_random_seed(3)
        cls.models, cls.before, cls.after = {}, {}, {}
        cls.trainable, cls.prepared_logits = {}, {}
        images = batch(4, seed=1)[0]
        for mode in finetune.MODES:
            if mode in ("ssf", "adaptformer"):  # test_ssf, test_adaptformer
                continue
            model = build()
            initial = logits(model, images)
            finetune.prepare(model, mode, lora_rank=RANK)
            cls.prepared_logits[mode] = (initial, logits(model, images))
            cls.before[mode] = snapshot(model)
            cls.trainable[mode] = trainable_count(model)
            train(model)
            cls.models[mode] = model
            cls.after[mode] = snapshot(model)

    def changed(self, mode, path):
        return not np.array_equal(
            self.before[mode][path], self.after[mode][path]
        )

    def assert_head_changed(self, mode):
        for path in ("logits/kernel", "logits/bias"):
            self.assertTrue(self.changed(mode, path), f"{mode}: {path}")

    def test_linear_freezes_the_whole_backbone(self):
        model = self.models["linear"]
        backbone = {w.path for w in model.get_layer("backbone").weights}
        self.assertLen(backbone, 135)  # the file's 135 arrays
        for path in backbone:
            # Bit-identical: kernels, batch norm gammas, betas, statistics.
            np.testing.assert_array_equal(
                self.after["linear"][path],
                self.before["linear"][path],
                err_msg=path,
            )
        self.assert_head_changed("linear")
        self.assertEqual(self.trainable["linear"], HEAD_PARAMS)
        # Batch norm in inference mode: training=True computes the same.
        images = batch(4, seed=2)[0]
        np.testing.assert_array_equal(
            logits(model, images, training=True), logits(model, images)
        )

    def test_lora_trains_adapters_and_head_only(self):
        model = self.models["lora"]
        # The adapted layers: every convolution but the depthwise ones.
        convolutions = ["conv1"] + [f"conv_pw_{i}" for i in range(1, 14)]
        adapted = finetune.lora_layers(model)
        self.assertCountEqual([layer.name for layer in adapted], convolutions)
        adapters = set()
        expected = HEAD_PARAMS
        for layer in adapted:
            kh, kw, fan_in, fan_out = layer._kernel.shape
            expected += RANK * (kh * kw * fan_in + fan_out)
            a, b = (f"{layer.name}/lora_kernel_{x}" for x in "ab")
            adapters |= {a, b}
            # B starts at zero, so the prepared model computed the same.
            np.testing.assert_array_equal(self.before["lora"][b], 0.0)
            self.assertTrue(self.changed("lora", a), a)
            self.assertTrue(self.changed("lora", b), b)
        self.assertEqual(self.trainable["lora"], expected)
        self.assertCountEqual(
            [w.path for w in model.trainable_weights],
            sorted(adapters) + ["logits/kernel", "logits/bias"],
        )
        for path in self.before["lora"]:
            if path in adapters or path.startswith("logits/"):
                continue
            # Base and depthwise kernels, batch norm weights and statistics.
            np.testing.assert_array_equal(
                self.after["lora"][path],
                self.before["lora"][path],
                err_msg=path,
            )
        self.assert_head_changed("lora")
        initial, prepared = self.prepared_logits["lora"]
        np.testing.assert_array_equal(prepared, initial)
        images = batch(4, seed=2)[0]
        np.testing.assert_array_equal(
            logits(model, images, training=True), logits(model, images)
        )

    def test_full_trains_everything(self):
        model = self.models["full"]
        for w in model.trainable_weights:
            self.assertTrue(self.changed("full", w.path), w.path)
        # Batch norm trains too: its moving statistics move.
        for w in model.non_trainable_weights:
            self.assertRegex(w.path, "moving_(mean|variance)$")
            self.assertTrue(self.changed("full", w.path), w.path)
        self.assertEqual(
            self.trainable["full"],
            model.count_params() - statistics_count(model),
        )
        initial, prepared = self.prepared_logits["full"]
        np.testing.assert_array_equal(prepared, initial)

    def test_weight_decay_on_trainable_kernels_only(self):
        # full: conv1, 13 pointwise convolutions and the head (depthwise
        # kernels do not decay, as in MobileNet's recipe); lora: the 2
        # adapters of each of those 14 (Keras gives them the layer's
        # regularizer) and the head; linear: the head.
        for mode, count in (("full", 15), ("linear", 1), ("lora", 29)):
            with self.subTest(mode=mode):
                model = self.models[mode]
                kernels = []
                for layer in model._flatten_layers(include_self=False):
                    if isinstance(
                        layer, keras.layers.DepthwiseConv2D
                    ) or not isinstance(
                        layer, (keras.layers.Conv2D, keras.layers.Dense)
                    ):
                        continue
                    if getattr(layer, "lora_enabled", False):
                        kernels += [layer.lora_kernel_a, layer.lora_kernel_b]
                    else:
                        kernels.append(layer._kernel)
                kernels = [k for k in kernels if k.trainable]
                self.assertLen(kernels, count)
                assert_weight_decay(self, model, kernels)

    def norm_weights(self, mode, kinds=("gamma", "beta")):
        model = self.models[mode]
        return {
            w.path
            for w in model.get_layer("backbone").weights
            if w.path.rsplit("/", 1)[-1] in kinds
        }

    def test_bn_trains_normalization_and_head_only(self):
        # MobileNet v1: 27 batch norms; its convolutions have no bias, so
        # bitfit trains the same weights as bn.
        for mode in ("bn", "bitfit"):
            with self.subTest(mode=mode):
                model = self.models[mode]
                norms = self.norm_weights(mode)
                statistics = self.norm_weights(
                    mode, ("moving_mean", "moving_variance")
                )
                self.assertLen(norms, 2 * 27)
                self.assertCountEqual(
                    [w.path for w in model.trainable_weights],
                    sorted(norms) + ["logits/kernel", "logits/bias"],
                )
                expected = HEAD_PARAMS + sum(
                    int(np.prod(self.before[mode][p].shape)) for p in norms
                )
                self.assertEqual(self.trainable[mode], expected)
                for path in self.before[mode]:
                    moved = self.changed(mode, path)
                    if path in norms or path in statistics:
                        # Trained, and batch norm in training mode.
                        self.assertTrue(moved, path)
                    elif not path.startswith("logits/"):
                        self.assertFalse(moved, path)  # kernels frozen
                self.assert_head_changed(mode)
                initial, prepared = self.prepared_logits[mode]
                np.testing.assert_array_equal(prepared, initial)

    def test_bitfit_trains_biases(self):
        # A backbone whose convolution has a bias.
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
        x = keras.layers.BatchNormalization(name="bn")(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        backbone = keras.Model(inputs, x, name="backbone")
        images = keras.Input((8, 8, 3))
        outputs = keras.layers.Dense(2, name="logits")(backbone(images))
        model = keras.Model(images, outputs)
        finetune.prepare(model, "bitfit")
        self.assertCountEqual(
            [w.path for w in model.trainable_weights],
            [
                "conv/bias",
                "bn/gamma",
                "bn/beta",
                "logits/kernel",
                "logits/bias",
            ],
        )
        finetune.prepare(model, "bn")
        self.assertCountEqual(
            [w.path for w in model.trainable_weights],
            ["bn/gamma", "bn/beta", "logits/kernel", "logits/bias"],
        )

    def test_lora_bn_trains_adapters_normalization_and_head(self):
        model = self.models["lora_bn"]
        norms = self.norm_weights("lora_bn")
        adapters = {
            w.path for w in model.trainable_weights if "lora_kernel" in w.path
        }
        self.assertLen(adapters, 2 * 14)
        self.assertCountEqual(
            [w.path for w in model.trainable_weights],
            sorted(adapters | norms) + ["logits/kernel", "logits/bias"],
        )
        norm_params = sum(
            int(np.prod(self.before["lora_bn"][p].shape)) for p in norms
        )
        self.assertEqual(
            self.trainable["lora_bn"], self.trainable["lora"] + norm_params
        )
        for path in self.norm_weights(
            "lora_bn", ("moving_mean", "moving_variance")
        ):
            self.assertTrue(self.changed("lora_bn", path), path)
        for layer in finetune.lora_layers(model):
            self.assertFalse(self.changed("lora_bn", layer._kernel.path))
        merged = finetune.merge_lora(model)
        images = batch(6, seed=4)[0]
        assert_float32_close(
            logits(merged, images), logits(model, images), "merged logits"
        )

    def test_merge_lora_equals_the_lora_model(self):
        model = self.models["lora"]
        merged = finetune.merge_lora(model)
        self.assertIsNot(merged, model)
        self.assertEmpty(finetune.lora_layers(merged))
        self.assertFalse(any("lora" in w.path for w in merged.weights))
        self.assertEqual(merged.count_params(), build().count_params())
        # Each kernel is base + A @ B * alpha / rank (float64 reference).
        for layer in finetune.lora_layers(model):
            base = np.asarray(layer._kernel, np.float64)
            a = np.asarray(layer.lora_kernel_a, np.float64)
            b = np.asarray(layer.lora_kernel_b, np.float64)
            expected = base + a @ b * (layer.lora_alpha / layer.lora_rank)
            kernel = merged.get_layer("backbone").get_layer(layer.name).kernel
            assert_float32_close(kernel, expected, err_msg=layer.name)
        images = batch(6, seed=4)[0]
        assert_float32_close(
            logits(merged, images), logits(model, images), "merged logits"
        )
        # Without LoRA there is nothing to merge.
        plain = self.models["full"]
        self.assertIs(finetune.merge_lora(plain), plain)


class ClassMeanHeadTest(TestCase):
    def test_matches_reference(self):
        # A from-scratch ResNet-8 (the head init of decoupled training):
        # a random MobileNet's features are ~1e-18 (the signal fades
        # through its 27 convolutions in inference mode), too small to
        # tell classes apart in float32.
        model = registry.build("resnet8", NUM_CLASSES, (32, 32, 3), 5e-4)
        images, labels = batch(14, seed=5)
        # Two batches: classes 2 to 6 have an example in each.
        batches = [(images[:9], labels[:9]), (images[9:], labels[9:])]
        features = keras.ops.convert_to_numpy(
            finetune.head_features_model(model)(images)
        ).astype(np.float64)
        head = model.get_layer("logits")
        # The features are what the head sees.
        assert_float32_close(
            logits(model, images),
            features @ np.asarray(head.kernel, np.float64)
            + np.asarray(head.bias, np.float64),
        )
        means = np.stack(
            [features[labels == c].mean(axis=0) for c in range(NUM_CLASSES)]
        )
        means /= np.linalg.norm(means, axis=1, keepdims=True)
        with warnings.catch_warnings(record=True) as noted:
            warnings.simplefilter("always")
            kernel = finetune.class_mean_head(model, batches, NUM_CLASSES)
        # Keras warned at each batch when the features model's input was
        # a list of one.
        self.assertEqual(
            [str(n.message) for n in noted if n.category is UserWarning], []
        )
        assert_float32_close(kernel, means.T)
        assert_float32_close(head.kernel, means.T)
        np.testing.assert_array_equal(head.bias, np.zeros(NUM_CLASSES))
        # The logits are the features' dot products with the class means.
        assert_float32_close(logits(model, images), features @ means.T)

    def test_class_without_examples(self):
        model = build()
        head = [np.array(w) for w in model.get_layer("logits").weights]
        images, labels = batch(12, seed=6)
        labels = np.where(labels == 4, 0, labels)  # no example of class 4
        with self.assertRaisesRegex(
            ValueError, r"Invalid value for argument `batches`.*\[4\]"
        ) as caught:
            finetune.class_mean_head(model, [(images, labels)], NUM_CLASSES)
        self.assertNotIn("\n", str(caught.exception))
        for old, new in zip(
            head, model.get_layer("logits").weights, strict=True
        ):
            np.testing.assert_array_equal(np.array(new), old)
        with self.assertRaisesRegex(ValueError, "no batches"):
            finetune.class_mean_head(model, [], NUM_CLASSES)


class PrepareArgumentsTest(TestCase):
    def test_model_without_backbone(self):
        model = registry.build("resnet8", NUM_CLASSES, (32, 32, 3), 5e-4)
        for mode in finetune.MODES:
            with self.assertRaisesRegex(
                ValueError, r"^Model 'resnet8' has no layer named 'backbone'"
            ) as caught:
                finetune.prepare(model, mode)
            self.assertNotIn("\n", str(caught.exception))

    def test_backbone_without_normalization(self):
        inputs = keras.Input((8, 8, 3))
        features = keras.layers.GlobalAveragePooling2D()(
            keras.layers.Conv2D(4, 3)(inputs)
        )
        backbone = keras.Model(inputs, features, name="backbone")
        images = keras.Input((8, 8, 3))
        model = keras.Model(
            images, keras.layers.Dense(2, name="logits")(backbone(images))
        )
        for mode in ("bn", "bitfit", "ssf"):
            with self.assertRaisesRegex(
                ValueError, r"has no batch, layer or group normalisation"
            ) as caught:
                finetune.prepare(model, mode)
            self.assertNotIn("\n", str(caught.exception))
            # Refused before anything changed.
            self.assertEqual(trainable_count(model), model.count_params())

    def test_bad_mode_and_rank(self):
        model = build()
        with self.assertRaisesRegex(
            ValueError,
            r"^Invalid value for argument `mode`\. Expected one of .*"
            r"Received: mode='partial'$",
        ):
            finetune.prepare(model, "partial")
        for rank in (0, -2):
            with self.assertRaisesRegex(
                ValueError,
                rf"^Invalid value for argument `lora_rank`\. Expected an "
                rf"integer >= 1\. Received: lora_rank={rank}$",
            ):
                finetune.prepare(model, "lora", lora_rank=rank)
            with self.assertRaisesRegex(ValueError, "lora_rank"):
                finetune.prepare(model, "lora_bn", lora_rank=rank)
        # Refused before anything changed.
        self.assertEmpty(finetune.lora_layers(model))
        self.assertEqual(
            trainable_count(model),
            model.count_params() - statistics_count(model),
        )
