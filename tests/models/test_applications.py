"""Tests for the Keras Applications backbones of the registry."""

import keras
import numpy as np

from la_keras.layers.backbone_input import BackboneInput
from la_keras.models import applications
from la_keras.models import registry
from tests.test_case import TestCase

# Each pretrained entry at its smallest published width: (width, its mode).
ENTRIES = {
    "mobilenet": (0.25, "tf"),
    "mobilenet_v2": (0.35, "tf"),
    "mobilenet_v3_small": (0.75, "raw"),
    "efficientnet_b0": (None, "raw"),
    "resnet50": (None, "caffe"),
}
NUM_CLASSES = 7


def build(name="mobilenet", input_shape=(32, 32, 3), weight_decay=5e-4, **kw):
    kw.setdefault("image_size", (32, 32))
    if name == "mobilenet":
        kw.setdefault("width", 0.25)
    return registry.build(
        name, NUM_CLASSES, input_shape, weight_decay, pretrained=True, **kw
    )


def decayed_kernels(model):
    """The kernels of `model`'s convolutions (depthwise ones excepted, as
    in MobileNet's recipe) and dense layers. (Per fine-tuning mode:
    tests/models/test_finetune.py.)"""
    return [
        layer._kernel
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))
        and not isinstance(layer, keras.layers.DepthwiseConv2D)
    ]


def assert_weight_decay(test, model, kernels, factor=5e-4):
    """`model.losses` are one weight decay loss per kernel of `kernels`,
    adding up to `factor * sum(w ** 2)` (in float64)."""
    test.assertLen(model.losses, len(kernels))
    expected = factor * sum(
        float(np.sum(np.asarray(k, np.float64) ** 2)) for k in kernels
    )
    total = sum(
        float(keras.ops.convert_to_numpy(loss)) for loss in model.losses
    )
    test.assertAllClose(total, expected, rtol=1e-5)


class ApplicationsTest(TestCase):
    def assert_one_line(self, error, *fragments):
        message = str(error.exception)
        self.assertNotIn("\n", message)
        for fragment in fragments:
            self.assertIn(fragment, message)

    def test_every_entry_builds(self):
        self.assertCountEqual(registry.pretrained_names(), list(ENTRIES))
        images = (
            np.random.default_rng(0)
            .uniform(-0.5, 0.5, (2, 32, 32, 3))
            .astype("float32")
        )
        for name, (width, mode) in ENTRIES.items():
            with self.subTest(name=name):
                self.assertTrue(registry.is_pretrained(name))
                model = build(name, width=width)
                self.assertEqual(model.output_shape, (None, NUM_CLASSES))
                first = model.layers[1]
                self.assertIsInstance(first, BackboneInput)
                self.assertEqual(first.mode, mode)
                self.assertEqual(first.size, (32, 32))
                backbone = model.get_layer("backbone")
                self.assertIsInstance(backbone, keras.Model)
                self.assertEqual(backbone.input_shape, (None, 32, 32, 3))
                self.assertIs(model.layers[-1], model.get_layer("logits"))
                logits = keras.ops.convert_to_numpy(model(images))
                self.assertEqual(logits.shape, (2, NUM_CLASSES))
                self.assertTrue(np.isfinite(logits).all())
                # Weight decay on every convolution and dense kernel.
                assert_weight_decay(self, model, decayed_kernels(model))

    def test_widths(self):
        model = build(width=0.5)
        # MobileNet's first convolution has 32 * alpha filters.
        self.assertEqual(
            model.get_layer("backbone").get_layer("conv1").filters, 16
        )
        self.assertEqual(applications.check_width("mobilenet", None), 1.0)
        self.assertEqual(applications.check_width("mobilenet", "0.75"), 0.75)
        self.assertIsNone(applications.check_width("efficientnet_b0", None))

    def test_bad_width(self):
        with self.assertRaisesRegex(
            ValueError,
            r"^Invalid value for argument `width`\. Expected one of 0\.25, "
            r"0\.5, 0\.75, 1\.0 for mobilenet.*Received: width=0\.3$",
        ) as caught:
            build(width=0.3)
        self.assert_one_line(caught)
        with self.assertRaisesRegex(ValueError, r"Received: width='wide'$"):
            build(width="wide")  # was float()'s own message
        for name in ("efficientnet_b0", "resnet50"):
            with self.subTest(name=name):
                with self.assertRaisesRegex(
                    ValueError,
                    rf"^Invalid value for argument `width`: {name} has no "
                    r"width multiplier.*Received: width=1\.0$",
                ):
                    build(name, width=1.0)

    def test_bad_image_size(self):
        for size in ((16, 16), (32, 31), (32,), (32, 32, 32), 64, ("a", "b")):
            # 64 and ("a", "b") were a TypeError and int()'s own message.
            with self.subTest(size=size):
                with self.assertRaisesRegex(
                    ValueError,
                    r"^Invalid value for argument `image_size`\. Expected "
                    r"\(height, width\), each at least 32.*Received: "
                    r"image_size=",
                ) as caught:
                    build(image_size=size)
                self.assert_one_line(caught)

    def test_default_image_size(self):
        self.assertEqual(applications.check_image_size(None), (224, 224))
        self.assertEqual(applications.check_image_size([96, 64]), (96, 64))

    def test_gray_images_of_another_size(self):
        model = build(input_shape=(28, 28, 1))
        self.assertEqual(model.input_shape, (None, 28, 28, 1))
        self.assertEqual(model.layers[1].size, (32, 32))
        self.assertEqual(model.layers[1].input_scale, [255.0])
        pixels = np.random.default_rng(1).integers(0, 256, (3, 28, 28, 1))
        images = (pixels / 255.0 - 0.5).astype("float32")
        logits = keras.ops.convert_to_numpy(model(images))
        self.assertEqual(logits.shape, (3, NUM_CLASSES))
        self.assertTrue(np.isfinite(logits).all())
        with self.assertRaisesRegex(ValueError, "`channels`"):
            build(input_shape=(28, 28, 1), preprocessing="imagenet")

    def test_resnet50_from_scratch_unchanged(self):
        model = registry.build("resnet50", NUM_CLASSES, (32, 32, 3), 5e-4)
        self.assertFalse(registry.get("resnet50").pretrained)
        self.assertTrue(registry.get("resnet50", pretrained=True).pretrained)
        self.assertFalse(
            any(isinstance(layer, BackboneInput) for layer in model.layers)
        )
        self.assertNotIn("backbone", [layer.name for layer in model.layers])
        # As tests/models/test_resnet50.py: backbone + 2048 x 7 head.
        self.assertEqual(
            model.count_params(), 23587712 + 2048 * NUM_CLASSES + NUM_CLASSES
        )

    def test_models_without_a_pretrained_form_refuse(self):
        cases = [
            (dict(image_size=(32, 32)), "image_size applies to pretrained"),
            (dict(width=0.5), "width applies to pretrained"),
            (dict(pretrained=True), "has no pretrained form"),
        ]
        for name in ("resnet8", "resnet44", "official_resnet32"):
            self.assertFalse(registry.is_pretrained(name))
            for kwargs, fragment in cases:
                with self.subTest(name=name, kwargs=kwargs):
                    with self.assertRaises(ValueError) as caught:
                        registry.build(
                            name, NUM_CLASSES, (32, 32, 3), 5e-4, **kwargs
                        )
                    self.assert_one_line(
                        caught, fragment, repr(name), "mobilenet"
                    )
        self.assertIn("mobilenet", registry.names())
        # The recipe alone is fine for any model (the launcher passes it).
        model = registry.build(
            "resnet8", NUM_CLASSES, (32, 32, 3), 5e-4, preprocessing="cifar"
        )
        self.assertEqual(model.output_shape, (None, NUM_CLASSES))

    def test_bad_weights_argument(self):
        with self.assertRaisesRegex(
            ValueError,
            r"^Invalid value for argument `weights`.*Received: "
            r"weights='a\.h5'$",
        ):
            applications.application_model(
                "mobilenet", 3, (32, 32, 3), weights="a.h5", width=0.25
            )
        with self.assertRaisesRegex(
            ValueError, r"Invalid value for argument `name`.*name='vgg16'"
        ):
            applications.application_model("vgg16", 3, (32, 32, 3))
        with self.assertRaisesRegex(ValueError, "`num_classes`"):
            applications.application_model("mobilenet", 0, (32, 32, 3))

    def test_no_weight_decay(self):
        self.assertEmpty(build(weight_decay=0.0).losses)
