"""Test-time ensembling (`la_keras.tta`), in evaluation and in serving.

The views are checked against a float64 numpy reference (crops cut by
index, bilinear resize with half-pixel centres written out); the run-level
tests share one smoke run of one epoch, trained in this process.
"""

import os

import keras
import numpy as np
import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from la_keras import runs
from la_keras import serving
from la_keras import tta
from la_keras.datasets import preprocess_images
from la_keras.runs import reporting
from la_keras.runs import run_state
from la_keras.runs.errors import RunError
from la_keras.runs.resolved import ResolvedConfig
from la_keras.training import evaluation
from launch import evaluate
from launch import export
from tests.launch import helpers
from tests.launch import shared_runs
from tests.test_case import TestCase

FLAGS = flags.FLAGS


def _resize_axis(size_in, size_out):
    """`(lower, upper, weight)` of bilinear resizing one axis, half-pixel
    centres and edges clamped (TensorFlow's `resize` without antialias)."""
    source = (np.arange(size_out) + 0.5) * size_in / size_out - 0.5
    source = np.clip(source, 0, size_in - 1)
    lower = np.floor(source).astype(int)
    upper = np.minimum(lower + 1, size_in - 1)
    return lower, upper, source - lower


def _resize(images, height, width):
    """Bilinear resize of float64 `[B, h, w, C]` to `[B, height, width, C]`."""
    top, bottom, dy = _resize_axis(images.shape[1], height)
    left, right, dx = _resize_axis(images.shape[2], width)
    rows = (
        images[:, top] * (1 - dy)[None, :, None, None]
        + images[:, bottom] * dy[None, :, None, None]
    )
    return (
        rows[:, :, left] * (1 - dx)[None, None, :, None]
        + rows[:, :, right] * dx[None, None, :, None]
    )


def _reference_views(images, mode):
    """float64 numpy views of `images`, independently of `la_keras.tta`."""
    images = np.asarray(images, np.float64)
    if mode == "flip":
        return [images, images[:, :, ::-1]]
    height, width = images.shape[1:3]
    h, w = round(height * 7 / 8 + 1e-9), round(width * 7 / 8 + 1e-9)
    offsets = [
        (0, 0), (0, width - w), (height - h, 0), (height - h, width - w),
        ((height - h) // 2, (width - w) // 2),
    ]  # fmt: skip
    return [
        _resize(images[:, t : t + h, s : s + w], height, width)
        for t, s in offsets
    ]


def _tiny_model(shape, head):
    inputs = keras.Input(shape)
    if head == "linear":
        x = keras.layers.Flatten()(inputs)
    elif head == "conv":
        x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
        x = keras.layers.Flatten()(x)
    else:  # flip-invariant: a 1x1 convolution and the spatial mean
        x = keras.layers.Conv2D(4, 1, activation="relu")(inputs)
        x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, keras.layers.Dense(5)(x))


class ViewsTest(TestCase):
    """The ensembled logits against the float64 reference."""

    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        # Not square: crops5 cuts 11 of 12 rows and 9 of 10 columns.
        self.images = rng.normal(size=(3, 12, 10, 3)).astype(np.float32)

    def test_crop_size_rule(self):
        self.assertEqual(
            [tta.crop_size(n) for n in (1, 4, 10, 12, 32, 224)],
            [1, 4, 9, 11, 28, 196],
        )
        self.assertEqual(tta.crop_boxes(32, 32)[4], (2, 2, 28, 28))

    def test_linear_model_matches_float64_reference(self):
        # Logits of a linear model in float64: the reference is numpy only.
        model = _tiny_model(self.images.shape[1:], "linear")
        kernel, bias = (np.asarray(w, np.float64) for w in model.get_weights())
        for mode in ("flip", "crops5"):
            views = _reference_views(self.images, mode)
            expected = np.mean(
                [v.reshape(len(v), -1) @ kernel + bias for v in views], axis=0
            )
            actual = np.asarray(tta.ensemble_logits(model, self.images, mode))
            # float32 views and a 360-term float32 dot product.
            np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)

    def test_logits_are_averaged(self):
        model = _tiny_model(self.images.shape[1:], "conv")
        for mode in ("flip", "crops5"):
            views = _reference_views(self.images, mode)
            expected = np.mean(
                [np.asarray(model(v.astype(np.float32))) for v in views],
                axis=0,
            )
            ensemble = tta.ensemble_model(model, mode)
            for actual in (
                tta.ensemble_logits(model, self.images, mode),
                ensemble(self.images),
                ensemble.predict(self.images, verbose=0),
            ):
                np.testing.assert_allclose(
                    np.asarray(actual), expected, rtol=1e-5, atol=1e-5
                )

    def test_flip_invariant_model_is_unchanged(self):
        model = _tiny_model(self.images.shape[1:], "invariant")
        plain = np.asarray(model(self.images))
        flipped = np.asarray(tta.ensemble_logits(model, self.images, "flip"))
        np.testing.assert_allclose(flipped, plain, rtol=1e-6, atol=1e-6)
        self.assertIs(tta.ensemble_model(model, "none"), model)
        none = np.asarray(tta.ensemble_logits(model, self.images, "none"))
        np.testing.assert_array_equal(none, plain)

    def test_bad_name_is_refused_in_one_line(self):
        model = _tiny_model(self.images.shape[1:], "linear")
        message = (
            "Invalid value for argument `tta`. Expected one of ('none', "
            "'flip', 'crops5'). Received: tta='crops10'"
        )
        for call in (
            lambda: tta.check_tta("crops10"),
            lambda: tta.ensemble_model(model, "crops10"),
            lambda: tta.ensemble_logits(model, self.images, "crops10"),
        ):
            with self.assertRaises(ValueError) as caught:
                call()
            self.assertEqual(str(caught.exception), message)


class RunTest(TestCase):
    """launch.evaluate and launch.export --tta on one smoke run."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helpers.define_all_flags()
        cls.root = tf.compat.v1.test.get_temp_dir()
        cls.model_dir = os.path.join(cls.root, "tta_run")
        shared_runs.train_in_process(cls.model_dir, epochs=1)
        cls.model, cls.info, _ = run_state.restore_model(
            ResolvedConfig.read(cls.model_dir)
        )
        with flagsaver.flagsaver(
            model_dir=cls.model_dir,
            output=os.path.join(cls.root, "plain.json"),
        ):
            cls.plain = evaluate.run(FLAGS)
        cls.output = os.path.join(cls.root, "flip.json")
        with flagsaver.flagsaver(
            model_dir=cls.model_dir, output=cls.output, tta="flip"
        ):
            cls.report = evaluate.run(FLAGS)

    def test_evaluate_reports_tta_apart(self):
        report, plain = self.report, self.plain
        for key in ("test", "holdout", "test_tau_sweep", "mode", "source"):
            self.assertEqual(report[key], plain[key])
        section = report["tta"]
        self.assertEqual(section["mode"], "flip")
        self.assertEqual(section["row"], "adjusted_tuned")
        tuned = section["test"]["adjusted_tuned"]
        self.assertEqual(
            section["balanced_accuracy"], tuned["balanced_accuracy"]
        )
        self.assertEqual(section["tau"], section["holdout"]["tau_star"])
        # The raw row: the figures of the ensembled logits, computed here.
        config = ResolvedConfig.read(self.model_dir)
        logits, labels = [], []
        for images, batch_labels in config.data.builder("test").build():
            logits.append(tta.ensemble_logits(self.model, images, "flip"))
            labels.append(batch_labels)
        expected = evaluation.classification_report(
            np.concatenate(logits), np.concatenate(labels),
            self.info.train_counts,
        )  # fmt: skip
        for key, value in expected.items():  # shot accuracies may be None
            if value is None:
                self.assertIsNone(section["test"]["raw"][key], key)
            else:
                self.assertAllClose(section["test"]["raw"][key], value)
        text = reporting.format_evaluation(report, self.output)
        headline = plain["test"]["adjusted_tuned"]["balanced_accuracy"]
        self.assertIn(
            f"test-time ensembling (flip): balanced accuracy "
            f"{section['balanced_accuracy']:.4f} (headline without it: "
            f"{headline:.4f})",
            text,
        )
        self.assertNotIn("test-time", reporting.format_evaluation(plain, None))
        served = reporting.format_evaluation(
            dict(plain, served_tta="flip"), None
        )
        self.assertIn("computes test-time ensembling (flip)", served)

    def test_export_serves_the_keras_ensemble(self):
        export_dir = os.path.join(self.root, "export_crops5")
        with flagsaver.flagsaver(
            model_dir=self.model_dir, export_dir=export_dir, tta="crops5"
        ):
            self.assertEqual(export.run(FLAGS), export_dir)
        loaded = tf.saved_model.load(export_dir)
        self.assertEqual(serving.served_tta(loaded), "crops5")
        images = np.random.default_rng(1).integers(
            0, 256, (4, *self.info.image_shape), np.uint8
        )
        served = loaded.signatures[serving.SIGNATURE](images=images)
        inputs = preprocess_images(
            images, self.info.preprocessing, training=False,
            image_size=self.info.image_shape[:2],
        )  # fmt: skip
        expected = tta.ensemble_logits(self.model, inputs, "crops5")
        np.testing.assert_allclose(
            served["raw_logits"].numpy(), np.asarray(expected), atol=1e-5
        )
        # A SavedModel of an export without the `tta` variable serves none.
        self.assertEqual(serving.served_tta(tf.Module()), "none")

    def test_refusals(self):
        options = runs.RunConfig(model_dir=self.model_dir)
        with self.assertRaisesRegex(RunError, "--format=tflite exports one"):
            runs.export(options, format="tflite", tta="flip")
        with self.assertRaisesRegex(ValueError, "Received: tta='crops'"):
            runs.export(options, tta="crops")
        with self.assertRaisesRegex(RunError, "not --saved_model"):
            runs.evaluate(options, saved_model=self.root, tta="flip")
