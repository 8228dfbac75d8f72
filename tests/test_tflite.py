"""`launch.export --format=tflite` and `TFLiteClassifier`.

Two short runs: the synthetic `test` dataset (fixed size, RGB) and a
grayscale PNG folder resized to `--image_size` (the TFLite model resizes). Int8's agreement with the
float model is measured in a benchmark, not here.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import app
from absl import flags
from absl.testing import flagsaver

from la_keras import serving
from la_keras import tflite_export
from la_keras.datasets.preprocessing import resize_images
from la_keras.runs import run_state
from la_keras.runs.resolved import ResolvedConfig
from la_keras.tflite_classifier import TFLiteClassifier
from launch import export
from tests import serving_session
from tests.launch import helpers
from tests.launch import shared_runs
from tests.launch import test_folder_runs
from tests.launch.test_folder_runs import CLASSES
from tests.test_case import TestCase

FLAGS = flags.FLAGS


def _export(model_dir, export_dir, **overrides):
    with flagsaver.flagsaver(
        model_dir=model_dir, export_dir=export_dir, **overrides
    ):
        return export.run(FLAGS)


def _assert_refused(test, classifier, shape, *requests):
    """`classifier` refuses each of `requests`, naming the image shape it
    takes (`[batch, <shape>]`) and what it received."""
    for bad in requests:
        with test.assertRaisesRegex(
            ValueError,
            rf"^Invalid value for argument `images`.*\[batch, {shape}\]\. "
            r"Received: images with dtype \w+ and shape",
        ):
            classifier(bad)


class FixedSizeRunTest(TestCase):
    """The shared smoke run on the synthetic 32x32 RGB set (exported to
    folders of its own here): TFLite against the SavedModel."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helpers.define_all_flags()
        cls.root = os.path.join(tf.compat.v1.test.get_temp_dir(), "tfl_fixed")
        cls.model_dir, cls.metrics, _ = shared_runs.posthoc_run()
        cls.path = _export(
            cls.model_dir, os.path.join(cls.root, "tfl"), format="tflite"
        )
        config = ResolvedConfig.read(cls.model_dir)
        images, _ = next(iter(config.data.raw_split("test")))
        cls.images = images.numpy()

    def test_float_logits_match_the_saved_model(self):
        self.assertEqual(os.path.basename(self.path), "model.tflite")
        served = tf.saved_model.load(self.metrics["export_dir"])
        expected = served.signatures["serving_default"](
            images=tf.constant(self.images)
        )
        logits, class_ids, names = TFLiteClassifier(self.path)(self.images)
        self.assertEqual(logits.dtype, np.float32)
        self.assertLess(
            np.max(np.abs(logits - expected["logits"].numpy())), 1e-4
        )
        self.assertAllEqual(class_ids, expected["classes"].numpy())
        self.assertEqual(
            names, [n.decode() for n in expected["class_names"].numpy()]
        )

    def test_builtin_ops_only_and_metadata(self):
        with open(self.path, "rb") as f:
            content = f.read()
        interpreter = tf.lite.Interpreter(model_content=content)
        ops = {op["op_name"] for op in interpreter._get_ops_details()}
        self.assertFalse([op for op in ops if op.startswith("Flex")])
        classifier = TFLiteClassifier(self.path)
        self.assertEqual(classifier.image_shape, (32, 32, 3))
        self.assertAllClose(
            classifier.metadata["tau"], self.metrics["served_tau"]
        )

    def test_requests_of_another_dtype_or_rank_are_refused(self):
        classifier = TFLiteClassifier(self.path)
        _assert_refused(
            self, classifier, "32, 32, 3",
            self.images.astype(np.float32), self.images[0],
            self.images[:, :16],
        )  # fmt: skip
        logits, class_ids, names = classifier(self.images[:0])
        self.assertEqual((logits.shape, class_ids.shape, names),
                         ((0, 10), (0,), []))  # fmt: skip

    def test_quantize_needs_tflite(self):
        with self.assertRaisesRegex(app.UsageError, "--format=tflite"):
            _export(self.model_dir, None, quantize="dynamic")

    def test_target_prior_train_matches_the_saved_model(self):
        saved = _export(
            self.model_dir,
            os.path.join(self.root, "sm_train"),
            target_prior="train",
        )
        path = _export(
            self.model_dir,
            os.path.join(self.root, "tfl_train"),
            format="tflite",
            target_prior="train",
        )
        expected = tf.saved_model.load(saved).signatures["serving_default"](
            images=tf.constant(self.images)
        )
        classifier = TFLiteClassifier(path)
        logits, class_ids, _ = classifier(self.images)
        self.assertLess(
            np.max(np.abs(logits - expected["logits"].numpy())), 1e-4
        )
        self.assertAllEqual(class_ids, expected["classes"].numpy())
        # Not the uniform rule's logits.
        uniform, _, _ = TFLiteClassifier(self.path)(self.images)
        self.assertGreater(np.max(np.abs(logits - uniform)), 1e-2)
        info = run_state.restore_model(ResolvedConfig.read(self.model_dir))[1]
        priors = np.asarray(info.priors, np.float64)
        self.assertAllClose(
            classifier.metadata["target_prior"], priors / priors.sum()
        )
        self.assertIsNone(TFLiteClassifier(self.path).metadata["target_prior"])


class ResizedFolderRunTest(test_folder_runs.FolderTestCase):
    """A grayscale folder run with --image_size: the model resizes."""

    ROOT, DATA, COUNTS = "tfl_gray", "data", (6, 4, 2)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.model_dir = os.path.join(cls.root, "run")
        cls.metrics = test_folder_runs.train_on_folder(
            cls.data, cls.model_dir, train_batch_size=4, image_size="24,20"
        )
        cls.path = _export(cls.model_dir, None, format="tflite")
        rng = np.random.default_rng(0)
        cls.images = rng.integers(0, 256, [3, 28, 28, 1]).astype(np.uint8)
        cls.other = rng.integers(0, 256, [2, 40, 33, 1]).astype(np.uint8)

    def _expected(self, resized):
        model, info, _ = run_state.restore_model(
            ResolvedConfig.read(self.model_dir)
        )
        return serving_session.expected_outputs(
            model, resized, "cifar", info.priors, self.metrics["served_tau"]
        )

    def test_resizes_requests_of_any_size_without_antialiasing(self):
        self.assertEqual(
            self.path, os.path.join(self.model_dir, "tflite", "model.tflite")
        )
        classifier = TFLiteClassifier(self.path)
        self.assertTrue(classifier.resizes)
        self.assertEqual(classifier.metadata["resize"], [24, 20])
        for images in (self.images, self.other, self.images):
            resized = tf.image.resize(
                tf.cast(images, tf.float32), (24, 20), antialias=False
            ).numpy()
            expected = self._expected(resized)
            logits, class_ids, names = classifier(images)
            self.assertAllClose(logits, expected["logits"], atol=1e-4)
            self.assertAllEqual(class_ids, expected["classes"])
            self.assertEqual(names, [CLASSES[i] for i in class_ids])

    def test_resize_images_first_gives_the_saved_models_logits(self):
        resized = resize_images(self.images, (24, 20)).numpy()
        served = tf.saved_model.load(self.metrics["export_dir"])
        expected = served.signatures["serving_default"](
            images=tf.constant(self.images)
        )
        logits, _, _ = TFLiteClassifier(self.path)(resized)
        self.assertAllClose(logits, expected["logits"].numpy(), atol=1e-4)

    def test_builtin_ops_only(self):
        with open(self.path, "rb") as f:
            interpreter = tf.lite.Interpreter(model_content=f.read())
        ops = {op["op_name"] for op in interpreter._get_ops_details()}
        self.assertIn("RESIZE_BILINEAR", ops)
        self.assertFalse([op for op in ops if op.startswith("Flex")])

    def test_wrong_channels_dtype_or_rank_are_refused(self):
        _assert_refused(
            self, TFLiteClassifier(self.path), "any, any, 1",
            np.repeat(self.images, 3, -1), self.images.astype(np.float32),
            self.images[0], self.images[:, :0],
        )  # fmt: skip

    def test_int8_converts_and_runs(self):
        path = _export(
            self.model_dir,
            os.path.join(self.root, "int8"),
            format="tflite",
            quantize="int8",
            representative_images=8,
        )
        classifier = TFLiteClassifier(path)
        self.assertEqual(classifier.metadata["quantize"], "int8")
        logits, class_ids, names = classifier(self.images)
        self.assertEqual(logits.shape, (3, 3))
        self.assertEqual(logits.dtype, np.float32)
        self.assertAllEqual(class_ids, np.argmax(logits, -1))
        self.assertLen(names, 3)

    def test_int8_needs_representative_images(self):
        with self.assertRaisesRegex(ValueError, "representative_images"):
            tflite_export.tflite_model(
                run_state.restore_model(ResolvedConfig.read(self.model_dir))[0],
                (24, 20, 1),
                "cifar",
                quantize="int8",
            )


class ImagenetPreprocessingTest(TestCase):
    """The "imagenet" recipe (resize and center crop) in builtin ops."""

    def test_matches_the_saved_model_signature(self):
        inputs = keras.Input((40, 40, 3))
        x = keras.layers.Conv2D(4, 3)(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(3)(x))
        priors = [0.6, 0.3, 0.1]
        for shape in ((40, 40, 3), (40, 40, 1)):
            content = tflite_export.tflite_model(
                model, shape, "imagenet", priors, 1.0
            )
            runner = tf.lite.Interpreter(
                model_content=content
            ).get_signature_runner()
            rng = np.random.default_rng(0)
            images = rng.integers(0, 256, [2, *shape]).astype(np.uint8)
            _, signatures = serving.serving_module(
                model, shape, "imagenet", priors, 1.0
            )
            serve = signatures[serving.SIGNATURE]
            self.assertAllClose(
                runner(images=images)["logits"],
                serve(tf.constant(images))["logits"],
                atol=1e-4,
            )


# Slow (19 s). The default suite converts and runs the float and int8
# TFLite models of the smoke and folder runs (FixedSizeRunTest,
# ResizedFolderRunTest) and checks BackboneInput against its reference
# (tests/layers/test_backbone_input.py).
@pytest.mark.slow
class BackboneInputTest(TestCase):
    """A pretrained-style model (its first layer undoes the recipe's
    normalisation): the TFLite model feeds it pixels, float and int8."""

    def test_float_matches_and_int8_tells_images_apart(self):
        from la_keras.models import registry

        keras.utils.set_random_seed(0)
        model = registry.build(
            "mobilenet", 4, (32, 32, 3), 5e-4, pretrained=True,
            image_size=(48, 48), width=0.25, preprocessing="cifar",
        )  # fmt: skip
        self.assertIsNotNone(tflite_export.pixel_model(model))
        rng = np.random.default_rng(0)
        head = model.get_layer("logits")  # starts at zero
        head.kernel.assign(rng.normal(0, 1, head.kernel.shape))
        images = rng.integers(0, 256, [64, 32, 32, 3]).astype(np.uint8)
        # Batch norm's statistics from these images (random weights with
        # the initial statistics give features of 1e-17 at the end).
        for layer in model._flatten_layers(include_self=False):
            if isinstance(layer, keras.layers.BatchNormalization):
                layer.momentum = 0.0
        model(images / 255.0 - 0.5, training=True)
        _, signatures = serving.serving_module(model, (32, 32, 3), "cifar")
        want = signatures[serving.SIGNATURE](tf.constant(images))["logits"]
        float_model = tflite_export.tflite_model(model, (32, 32, 3), "cifar")
        run = tf.lite.Interpreter(model_content=float_model)
        got = run.get_signature_runner()(images=images)["logits"]
        # The same maths without the normalisation and its inverse, in
        # TFLite's kernels: float32 rounding through 28 layers whose batch
        # norm divides by the statistics of noise images (2e-4 of the
        # largest logit here, as with the normalisation kept).
        scale = float(np.max(np.abs(want)))
        self.assertAllClose(got, want, atol=1e-3 * scale, rtol=0)
        int8 = tflite_export.tflite_model(
            model, (32, 32, 3), "cifar", quantize="int8",
            representative_images=images[:48],
        )  # fmt: skip
        run = tf.lite.Interpreter(model_content=int8)
        logits = run.get_signature_runner()(images=images[48:])["logits"]
        # Before the pixels went in directly, every image gave the same
        # logits: the normalised tensor was quantized to one level.
        spread = np.std(logits, axis=0)
        self.assertGreater(float(spread.max()), 0.1 * float(np.std(want)))
