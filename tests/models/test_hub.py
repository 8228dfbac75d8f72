"""KerasHub backbones (`--model=hub:<preset>`) from tiny local presets.

Presets cannot be downloaded here: each test class saves tiny randomly
initialised backbones and their image converters with `save_to_preset` and
builds them by directory, as `--model=hub:<dir>` does.
"""

import os
import shutil
import sys
import tempfile
from unittest import mock

import keras
import numpy as np
import pytest

from la_keras.models import finetune
from la_keras.models import registry
from tests.launch import helpers
from tests.numerics import assert_float32_close
from tests.test_case import TestCase

keras_hub = pytest.importorskip(
    "keras_hub", reason='keras-hub is not installed (pip install ".[hub]")'
)

# ResNet-style per-channel ImageNet mean/std, as the ResNet presets have.
_MEAN, _STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
RESNET_SCALE = [1.0 / (255.0 * s) for s in _STD]
RESNET_OFFSET = [-m / s for m, s in zip(_MEAN, _STD, strict=True)]


def save_presets(root):
    """Tiny ViT, ResNet, CLIP and BERT (text) presets under `root`."""
    keras.utils.set_random_seed(7)
    paths = {name: os.path.join(root, name) for name in ("vit", "resnet")}
    paths.update(clip=os.path.join(root, "clip"), bert=os.path.join(root, "b"))
    keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3),
        patch_size=8,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        mlp_dim=32,
    ).save_to_preset(paths["vit"])
    keras_hub.layers.ViTImageConverter(
        image_size=(32, 32), scale=1 / 127.5, offset=-1.0
    ).save_to_preset(paths["vit"])
    keras_hub.models.ResNetBackbone(
        input_conv_filters=[64],
        input_conv_kernel_sizes=[3],
        stackwise_num_filters=[64, 16],
        stackwise_num_blocks=[1, 1],
        stackwise_num_strides=[1, 2],
        block_type="basic_block",
        use_pre_activation=False,
        image_shape=(None, None, 3),
    ).save_to_preset(paths["resnet"])
    keras_hub.layers.ResNetImageConverter(
        image_size=(40, 40), scale=RESNET_SCALE, offset=RESNET_OFFSET
    ).save_to_preset(paths["resnet"])
    tiny = dict(hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32)
    keras_hub.models.CLIPBackbone(
        keras_hub.models.CLIPVisionEncoder(
            patch_size=8, image_shape=(32, 32, 3), **tiny
        ),
        keras_hub.models.CLIPTextEncoder(
            vocabulary_size=50, embedding_dim=16, max_sequence_length=8, **tiny
        ),
        projection_dim=8,
    ).save_to_preset(paths["clip"])
    keras_hub.layers.CLIPImageConverter(
        image_size=(32, 32), scale=1 / 255.0
    ).save_to_preset(paths["clip"])
    keras_hub.models.BertBackbone(
        vocabulary_size=20, max_sequence_length=8, **tiny
    ).save_to_preset(paths["bert"])
    return paths


def build(preset, input_shape=(32, 32, 3), **options):
    return registry.build(
        "hub:" + preset, 10, input_shape, 5e-4, pretrained=True, **options
    )


def images(n=4, shape=(32, 32, 3), seed=0):
    """Images normalised by the "cifar" recipe, in [-0.5, 0.5]."""
    return (
        np.random.default_rng(seed)
        .uniform(-0.5, 0.5, (n, *shape))
        .astype("float32")
    )


def predict(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def step(model, x, labels):
    """One SGD step (Keras's train step); returns its loss."""
    model.compile(
        keras.optimizers.SGD(0.5),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=False,
    )
    return model.train_on_batch(x, labels)


# One LoRA step of the ViT preset on the JAX backend (the project's
# JaxTrainer), from the weights (adapters included) and batch in argv[2].
_JAX_STEP = """
import json, sys
import keras, numpy as np
from la_keras.models import finetune, registry
from la_keras.training.jax_trainer import JaxTrainer
preset, start, out = sys.argv[1:4]
model = registry.build("hub:" + preset, 10, (32, 32, 3), 5e-4, pretrained=True)
finetune.prepare(model, "lora", lora_rank=2)
with np.load(start) as data:
    for i, variable in enumerate(model.weights):
        variable.assign(data[f"w{i}"])
    x, labels = data["x"], data["labels"]
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
trainer = JaxTrainer(model, loss, keras.optimizers.SGD(0.5))
value = trainer.train_steps(iter([(x, labels)]), 1)
np.savez(out, *[np.asarray(v.numpy()) for v in model.weights])
print(json.dumps({"loss": value, "step": trainer.step}))
"""


class PresetTestCase(TestCase):
    """Tests of the tiny presets of `save_presets`, saved once per class."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.presets = save_presets(cls.root)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def loaded(self, name, **options):
        """The registry model of preset `name`, with the preset's weights."""
        model = build(self.presets[name], **options)
        registry.load_pretrained(model, "hub:" + self.presets[name], "preset")
        return model


class HubTest(PresetTestCase):
    def test_output_shapes(self):
        # (preset, options, the size the backbone sees, feature size)
        cases = [
            ("vit", {}, (32, 32), 16),  # the converter's size
            ("resnet", {}, (40, 40), 16),
            ("resnet", {"image_size": (48, 48)}, (48, 48), 16),
            ("clip", {}, (32, 32), 16),  # the vision tower only
        ]
        for name, options, size, dim in cases:
            model = build(self.presets[name], **options)
            self.assertEqual(model.get_layer("backbone_input").size, size)
            self.assertEqual(
                model.get_layer("backbone").input.shape, (None, *size, 3)
            )
            self.assertEqual(
                model.get_layer("backbone").output.shape[1:], (dim,)
            )
            self.assertEqual(tuple(model(images()).shape), (4, 10))
        # Grayscale data is repeated to RGB.
        gray = build(self.presets["resnet"], (32, 32, 1))
        self.assertEqual(tuple(gray(images(shape=(32, 32, 1))).shape), (4, 10))

    def test_preset_weights_load_exactly(self):
        for name in ("vit", "resnet", "clip"):
            saved = keras_hub.models.Backbone.from_preset(self.presets[name])
            if name == "clip":
                saved = saved.vision_encoder
            model = build(self.presets[name])
            backbone = model.get_layer("backbone")
            self.assertFalse(
                all(
                    np.array_equal(a, b)
                    for a, b in zip(
                        backbone.get_weights(), saved.get_weights(), strict=True
                    )
                )
            )
            registry.load_pretrained(
                model, "hub:" + self.presets[name], "preset"
            )
            for variable, expected in zip(
                backbone.weights, saved.weights, strict=True
            ):
                np.testing.assert_array_equal(
                    variable.numpy(), expected.numpy(), err_msg=variable.path
                )

    def test_features_are_the_presets_pooling(self):
        # ViT: the class token; CLIP: its vision encoder's class token; the
        # ResNet: the mean over the feature map.
        z = np.random.default_rng(1).normal(size=(2, 32, 32, 3))
        z = z.astype("float32")
        for name in ("vit", "clip", "resnet"):
            model = self.loaded(name, image_size=(32, 32))
            hub = keras_hub.models.Backbone.from_preset(self.presets[name])
            if name == "clip":
                hub = hub.vision_encoder
                out = hub({"images": z})
            else:
                out = hub(z)
            out = np.asarray(out, np.float64)
            expected = out.mean(axis=(1, 2)) if out.ndim == 4 else out[:, 0]
            features = model.get_layer("backbone")(z)
            assert_float32_close(features, expected, name)

    def test_backbone_weights_file(self):
        model = self.loaded("vit")
        path = os.path.join(self.get_temp_dir(), "vit.weights.h5")
        model.get_layer("backbone").save_weights(path)
        other = build(self.presets["vit"])
        registry.load_pretrained(other, "hub:" + self.presets["vit"], path)
        for loaded, saved in zip(
            other.get_layer("backbone").get_weights(),
            model.get_layer("backbone").get_weights(),
            strict=True,
        ):
            np.testing.assert_array_equal(loaded, saved)
        resnet = build(self.presets["resnet"])
        with self.assertRaisesRegex(ValueError, "vit.weights.h5 does not fit"):
            registry.load_pretrained(
                resnet, "hub:" + self.presets["resnet"], path
            )

    def test_converter_scaling_matches_float64_reference(self):
        x = images(shape=(32, 32, 3)).astype(np.float64)
        pixels = x * 255.0 + 127.5  # the "cifar" recipe undone
        cases = [
            ("vit", 1 / 127.5, -1.0),
            ("resnet", np.array(RESNET_SCALE), np.array(RESNET_OFFSET)),
        ]
        for name, scale, offset in cases:
            # At the dataset's size: no resize between pixels and converter.
            model = build(self.presets[name], image_size=(32, 32))
            converted = keras.Model(
                model.input, model.get_layer("image_converter").output
            )(x.astype("float32"))
            assert_float32_close(converted, pixels * scale + offset, name)
            # The preset's own converter gives the same.
            converter = keras_hub.layers.ImageConverter.from_preset(
                self.presets[name], image_size=None
            )
            assert_float32_close(
                converted, converter(pixels.astype("float32")), name
            )

    def test_linear_trains_the_head_only(self):
        model = finetune.prepare(self.loaded("resnet"), "linear")
        backbone = model.get_layer("backbone")
        before = [w.copy() for w in backbone.get_weights()]
        head = model.get_layer("logits").get_weights()[0].copy()
        step(model, images(), np.arange(4))
        for variable, value in zip(backbone.weights, before, strict=True):
            np.testing.assert_array_equal(
                variable.numpy(), value, variable.path
            )
        self.assertGreater(
            np.abs(model.get_layer("logits").get_weights()[0] - head).max(), 0
        )

    def test_lora_on_the_vit_attention_and_mlp(self):
        model = finetune.prepare(self.loaded("vit"), "lora", lora_rank=2)
        adapted = {type(a).__name__ for a in finetune.lora_layers(model)}
        self.assertTrue({"EinsumDense", "Dense", "Conv2D"} <= adapted, adapted)
        query = [a for a in finetune.lora_layers(model) if a.name == "query"][0]
        base = query._kernel.numpy().copy()
        x, labels = images(), np.arange(4)
        lora_b = query.lora_kernel_b.numpy().copy()
        step(model, x, labels)
        np.testing.assert_array_equal(query._kernel.numpy(), base)
        self.assertGreater(
            np.abs(query.lora_kernel_b.numpy() - lora_b).max(), 0
        )
        trainable = {v.path.split("/")[-1] for v in model.trainable_weights}
        self.assertEqual(
            {n for n in trainable if not n.startswith("lora_")},
            {"kernel", "bias"},
        )  # the head's

    def test_merged_lora_equals_the_lora_model(self):
        for name in ("vit", "resnet"):
            model = finetune.prepare(self.loaded(name), "lora", lora_rank=2)
            x = images()
            start = predict(model, x)
            step(model, x, np.arange(4))
            expected = predict(model, x)
            self.assertGreater(np.abs(expected - start).max(), 1e-6)
            merged = finetune.merge_lora(model)
            self.assertEqual(finetune.lora_layers(merged), [])
            assert_float32_close(predict(merged, x), expected, name)

    def test_tensorflow_checkpoint_holds_every_weight(self):
        # Keras's object graph misses the blocks KerasHub's ViT encoder
        # appends to a list in `build`: the checkpoint lists every variable.
        import tensorflow as tf

        from la_keras.training import CheckpointStore

        model = self.loaded("vit")
        x = images()
        directory = self.get_temp_dir()
        store = CheckpointStore(directory, model=model)
        path = store.save(1)
        stored = [n for n, _ in tf.train.list_variables(path)]
        self.assertLen(
            [n for n in stored if n.startswith("model_variables/")],
            len(model.variables),
        )
        fresh = build(self.presets["vit"])  # random weights
        self.assertNotAllClose(predict(fresh, x), predict(model, x))
        self.assertEqual(
            CheckpointStore(directory, model=fresh).restore_latest(), path
        )
        self.assertAllEqual(predict(fresh, x), predict(model, x))
        # A checkpoint written before the list restores where it held the
        # whole model (a CNN); a ViT's, which lacks the blocks, is refused.
        for name, complete in (("resnet", True), ("vit", False)):
            older = os.path.join(self.get_temp_dir(), f"older_{name}")
            tf.train.Checkpoint(model=self.loaded(name)).save(f"{older}/ckpt")
            store = CheckpointStore(older, model=build(self.presets[name]))
            if complete:
                self.assertIsNotNone(store.restore_latest())
            else:
                with self.assertRaisesRegex(Exception, "damaged"):
                    store.restore_latest()

    def test_serialization_round_trip(self):
        x = images()
        for name in ("vit", "resnet"):
            model = self.loaded(name)
            restored = self.run_model_saving_test(model, x)
            self.assertIn(
                "keras_hub",
                type(restored.get_layer("backbone").layers[1]).__module__,
            )
            lora = finetune.prepare(model, "lora", lora_rank=2)
            step(lora, x, np.arange(4))
            self.run_model_saving_test(finetune.merge_lora(lora), x, atol=1e-5)

    def test_errors_are_one_line(self):
        missing = os.path.join(self.root, "missing")
        cases = [
            (ValueError, "missing does not exist", dict(preset=missing)),
            (
                ValueError,
                "no_such_preset_xyz",
                dict(preset="no_such_preset_xyz"),
            ),
            (
                ValueError,
                "BertBackbone, not a supported vision backbone",
                dict(preset=self.presets["bert"]),
            ),
            (ValueError, "width", dict(preset=self.presets["vit"], width=0.5)),
            (
                ValueError,
                "takes 32x32 images only",
                dict(preset=self.presets["vit"], image_size=(64, 64)),
            ),
        ]
        no_converter = os.path.join(self.root, "no_converter")
        shutil.copytree(
            self.presets["resnet"], no_converter, dirs_exist_ok=True
        )
        os.remove(os.path.join(no_converter, "image_converter.json"))
        cases.append(
            (ValueError, "has no image converter", dict(preset=no_converter))
        )
        for error, message, kwargs in cases:
            preset = kwargs.pop("preset")
            with self.assertRaisesRegex(error, message) as raised:
                build(preset, **kwargs)
            self.assertNotIn("\n", str(raised.exception))
        with self.assertRaisesRegex(ValueError, "preset=''"):
            registry.get("hub:")
        model = build(self.presets["vit"])
        with self.assertRaisesRegex(ValueError, "weights='imagenet'"):
            registry.load_pretrained(
                model, "hub:" + self.presets["vit"], "imagenet"
            )
        with self.assertRaisesRegex(ValueError, "width"):
            registry.load_pretrained(
                model, "hub:" + self.presets["vit"], "preset", 1.0
            )

    def test_missing_keras_hub(self):
        with mock.patch.dict(sys.modules, {"keras_hub": None}):
            with self.assertRaisesRegex(
                ImportError, r'pip install "la_keras\[hub\]"'
            ) as raised:
                registry.get("hub:vit_base_patch16_224_imagenet")
        self.assertNotIn("\n", str(raised.exception))

    def test_registry_knows_hub(self):
        self.assertTrue(registry.is_known("hub:" + self.presets["vit"]))
        self.assertTrue(registry.is_known("hub:vit_base_patch16_224_imagenet"))
        self.assertFalse(registry.is_known("hub:"))
        self.assertTrue(registry.is_pretrained("hub:anything"))
        self.assertIn("hub:<preset>", registry.describe())
        spec = registry.get("hub:" + self.presets["vit"])
        self.assertTrue(spec.pretrained)
        self.assertEqual(spec.name, "hub:" + self.presets["vit"])

    @pytest.mark.slow
    def test_jax_lora_step_equals_the_tensorflow_step(self):
        pytest.importorskip("jax")
        model = finetune.prepare(self.loaded("vit"), "lora", lora_rank=2)
        x, labels = images(), np.arange(4, dtype="int32")
        tmp = self.get_temp_dir()
        start, out = os.path.join(tmp, "start.npz"), os.path.join(tmp, "j.npz")
        weights = {f"w{i}": v.numpy() for i, v in enumerate(model.weights)}
        np.savez(start, x=x, labels=labels, **weights)
        tf_loss = float(step(model, x, labels))
        jax_out = helpers.run_script(
            _JAX_STEP, self.presets["vit"], start, out, backend="jax"
        )
        self.assertEqual(jax_out["step"], 1)
        self.assertAllClose(jax_out["loss"], tf_loss, rtol=1e-5)
        with np.load(out) as stepped:
            for i, variable in enumerate(model.weights):
                assert_float32_close(
                    stepped[f"arr_{i}"], variable.numpy(), variable.path
                )
                # Base weights stay; the head and the adapters' B train (A
                # has a zero gradient while B is zero, but weight decay).
                changed = not np.array_equal(variable.numpy(), weights[f"w{i}"])
                name = variable.path.split("/")[-1]
                if not name.startswith("lora_"):
                    self.assertEqual(
                        changed, "logits" in variable.path, variable.path
                    )
                elif name.endswith("_b"):
                    self.assertTrue(changed, variable.path)
