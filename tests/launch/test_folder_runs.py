"""launch.train / export / prepare on `--dataset=folder:PATH` (TensorFlow).

The folders are made here with Pillow: grayscale 28x28 PNGs of five
long-tailed classes, each class a brightness band, so that a short run
learns something. The JAX backend without TensorFlow has its own test in
`test_without_tensorflow.py`.
"""

import json
import os
import shutil
import types
from unittest import mock

import numpy as np
import tensorflow as tf
from absl import app
from absl import flags
from absl.testing import flagsaver
from PIL import Image

from la_keras.datasets import folder
from la_keras.datasets import prepared
from la_keras.runs import data_checks
from la_keras.runs import run_state
from la_keras.runs.resolved import ResolvedConfig
from launch import export
from launch import prepare
from tests import serving_session
from tests.launch import helpers
from tests.launch import shared_runs
from tests.test_case import TestCase

FLAGS = flags.FLAGS
CLASSES = ("ant", "bee", "cow", "dog", "elk")
TRAIN_COUNTS = (24, 12, 6, 3, 2)
TEST_PER_CLASS = 3


def make_gray_folder(root, size=(28, 28), counts=TRAIN_COUNTS, seed=0):
    """`root/{train,test}/<class>/<n>.png`: grayscale PNGs, class c in the
    band [50c, 50c + 40)."""
    rng = np.random.default_rng(seed)
    for split, per_class in (
        ("train", counts),
        ("test", [TEST_PER_CLASS] * len(counts)),
    ):
        for label, (name, count) in enumerate(
            zip(CLASSES, per_class, strict=False)
        ):
            directory = os.path.join(root, split, name)
            os.makedirs(directory, exist_ok=True)
            for i in range(count):
                pixels = rng.integers(0, 40, size) + 50 * label
                Image.fromarray(pixels.astype(np.uint8)).save(
                    os.path.join(directory, f"{i:03d}.png")
                )
    return root


# A short run on a folder of `make_gray_folder`: the smoke run's model and
# learning rate, one epoch without warm-up, the dataset's own holdout.
FOLDER_FLAGS = dict(
    helpers.SMOKE_FLAGS,
    epochs=1,
    train_batch_size=8,
    test_batch_size=5,
    warmup_epochs=0.0,
    holdout_fraction=None,
)


def folder_flags(data, model_dir, **overrides):
    """The flag values of a short run on the folder `data`."""
    return shared_runs.run_flags(
        model_dir, FOLDER_FLAGS, {"dataset": f"folder:{data}"}, **overrides
    )


def train_on_folder(data, model_dir, **overrides):
    """A short in-process run on the folder `data`; its metrics."""
    return shared_runs.train_with(folder_flags(data, model_dir, **overrides))


class FolderTestCase(TestCase):
    """`cls.root`, a folder `ROOT` of the class's own, and `cls.data`, the
    folder `root/DATA` of `make_gray_folder` with `COUNTS` training images."""

    ROOT = "folders"
    DATA = "gray"
    COUNTS = TRAIN_COUNTS

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helpers.define_all_flags()
        cls.root = os.path.join(tf.compat.v1.test.get_temp_dir(), cls.ROOT)
        cls.data = make_gray_folder(
            os.path.join(cls.root, cls.DATA), counts=cls.COUNTS
        )


class FolderRunTest(FolderTestCase):
    """One run on a grayscale PNG folder, shared by the checks below."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.model_dir = os.path.join(cls.root, "run")
        cls.metrics = train_on_folder(cls.data, cls.model_dir)

    def test_metrics_name_the_classes(self):
        with open(os.path.join(self.model_dir, "metrics.json")) as f:
            metrics = json.load(f)
        self.assertEqual(metrics["class_names"], list(CLASSES))
        raw = metrics["test"]["raw"]
        self.assertLen(raw["per_class_accuracy"], len(CLASSES))
        self.assertAllClose(
            raw["balanced_accuracy"], np.mean(raw["per_class_accuracy"])
        )
        self.assertNotIn("skipped_images", metrics)
        self.assertEqual(metrics["classes_without_test_images"], [])
        self.assertEqual(
            metrics["test_images_identical_to_training"],
            {"count": 0, "first": []},
        )
        self.assertTrue(
            os.path.exists(os.path.join(self.model_dir, "folder_index.json"))
        )

    def test_priors_are_the_folders_class_counts(self):
        info = ResolvedConfig.read(self.model_dir).data.info()
        counts = np.array(TRAIN_COUNTS, np.float64)
        self.assertAllClose(info.priors, counts / counts.sum(), rtol=1e-12)
        self.assertEqual(info.image_shape, (28, 28, 1))
        self.assertEqual(info.preprocessing, "cifar")

    def test_export_serves_uint8_images_by_class_name(self):
        export_dir = os.path.join(self.model_dir, "exported")
        with flagsaver.flagsaver(
            model_dir=self.model_dir, export_dir=export_dir
        ):
            export.run(FLAGS)
        loaded = tf.saved_model.load(export_dir)
        spec = loaded.signatures["serving_default"].structured_input_signature
        self.assertEqual(spec[1]["images"].shape.as_list(), [None, 28, 28, 1])
        self.assertEqual(spec[1]["images"].dtype, tf.uint8)
        self.assertEqual(
            [n.decode() for n in loaded.class_names.numpy()], list(CLASSES)
        )
        model, info, _ = run_state.restore_model(
            ResolvedConfig.read(self.model_dir)
        )
        images, _, _ = folder.arrays(f"folder:{self.data}", "test")
        serving_session.assert_served_in_session(
            self, export_dir, model, images, info.priors,
            self.metrics["served_tau"], CLASSES,
        )  # fmt: skip

    def test_resume_refuses_a_changed_folder(self):
        extra = os.path.join(self.data, "train", "ant", "zz_new.png")
        shutil.copy(os.path.join(self.data, "train", "ant", "000.png"), extra)
        self.addCleanup(os.remove, extra)
        with self.assertRaisesRegex(app.UsageError, "changed since") as caught:
            train_on_folder(self.data, self.model_dir)
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        self.assertIn("1 files added", message)
        self.assertIn("train/ant/zz_new.png", message)

    def test_prepare_writes_the_folder(self):
        output = os.path.join(self.root, "gray.prepared")
        with flagsaver.flagsaver(
            **folder_flags(
                self.data, os.path.join(self.root, "prep"),
                output=output, holdout_fraction=0.2,
            )
        ):  # fmt: skip
            prepare.run(FLAGS)
        data = prepared.read(output)
        self.assertEqual(data.metadata["class_names"], list(CLASSES))
        test_images, test_labels, _ = folder.arrays(
            f"folder:{self.data}", "test"
        )
        self.assertAllEqual(data.splits["test"][0], test_images)
        self.assertAllEqual(data.splits["test"][1], test_labels)
        holdout = data.splits["holdout"][1]
        self.assertEqual(len(holdout) + len(data.splits["train"][1]), 47)


class FolderBadInputTest(FolderTestCase):
    ROOT = "bad"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.bad = os.path.join(cls.data, "train", "bee", "001.png")
        with open(cls.bad, "rb") as f:
            head = f.read(100)
        with open(cls.bad, "wb") as f:
            f.write(head)  # a truncated PNG
        # "elk" has no test image; a training image is a test image too.
        shutil.rmtree(os.path.join(cls.data, "test", "elk"))
        shutil.copy(
            os.path.join(cls.data, "train", "ant", "000.png"),
            os.path.join(cls.data, "test", "ant", "dup.png"),
        )
        cls.skipped_dir = os.path.join(cls.root, "skipped")
        with mock.patch.object(data_checks.logging, "warning") as warning:
            cls.skipped_metrics = train_on_folder(
                cls.data, cls.skipped_dir, skip_bad_images=True
            )
        cls.warnings = [c.args[0] % c.args[1:] for c in warning.call_args_list]

    def test_corrupt_png_exits_1_naming_it(self):
        result = helpers.run_module(
            "launch.train",
            helpers.flag_args(
                folder_flags(self.data, os.path.join(self.root, "refused"))
            ),
        )
        self.assertEqual(result.returncode, 1, result.stderr[-2000:])
        lines = result.stderr.strip().splitlines()
        self.assertLen(lines, 1)
        self.assertStartsWith(
            lines[0],
            f"launch.train: error: folder:{self.data} has 1 unreadable image "
            f"file: {self.bad} (truncated or corrupt: ",
        )
        self.assertIn("--skip_bad_images", lines[0])

    def test_skip_bad_images_trains_and_reports_it(self):
        model_dir, metrics = self.skipped_dir, self.skipped_metrics
        self.assertEqual(
            metrics["skipped_images"], {"count": 1, "first": [self.bad]}
        )
        with open(os.path.join(model_dir, "metrics.json")) as f:
            self.assertEqual(
                json.load(f)["skipped_images"]["first"], [self.bad]
            )
        info = ResolvedConfig.read(model_dir).data.info()
        self.assertAllEqual(
            info.train_counts, np.subtract(TRAIN_COUNTS, [0, 1, 0, 0, 0])
        )

    def test_train_only_class_and_leaked_test_image_are_reported(self):
        missing = [w for w in self.warnings if "no test image" in w]
        self.assertLen(missing, 1)
        self.assertIn("elk (2 training images)", missing[0])
        self.assertIn("averaged over the 4 classes that have test", missing[0])
        self.assertIn(
            f"folder:{self.data}: 1 test image is byte-identical to training "
            "images (e.g. test/ant/dup.png = train/ant/000.png); its accuracy "
            "overstates generalisation.",
            self.warnings,
        )
        with open(os.path.join(self.skipped_dir, "metrics.json")) as f:
            metrics = json.load(f)
        self.assertEqual(metrics["classes_without_test_images"], ["elk"])
        self.assertEqual(
            metrics["test_images_identical_to_training"],
            {"count": 1, "first": ["test/ant/dup.png = train/ant/000.png"]},
        )
        # Balanced accuracy: the mean over the classes with test images.
        raw = metrics["test"]["raw"]
        self.assertIsNone(raw["per_class_accuracy"][-1])
        self.assertAllClose(
            raw["balanced_accuracy"], np.mean(raw["per_class_accuracy"][:-1])
        )

    def test_folder_flags_need_a_folder(self):
        with self.assertRaisesRegex(
            app.UsageError,
            r"^--image_size applies to --dataset=folder:<path> only, not "
            r"--dataset=test \(--image_size also sizes the input of a "
            r"pretrained backbone: --pretrained, hub:\)\.$",
        ):
            train_on_folder(
                self.data, os.path.join(self.root, "x"), dataset="test",
                image_size="32",
            )  # fmt: skip

    def test_jax_refuses_a_set_larger_than_half_the_device(self):
        from la_keras.runs import train_jax

        name = f"folder:{self.data}"
        info = folder.describe(name, "train", skip_bad_images=True)[2]
        config = types.SimpleNamespace(data=types.SimpleNamespace(dataset=name))
        size = info.num_examples["train"] * 28 * 28  # uint8, one channel
        with mock.patch.object(
            train_jax, "device_memory_bytes", return_value=2 * size
        ):
            train_jax.check_fits(config, info)  # exactly half: accepted
        with mock.patch.object(
            train_jax, "device_memory_bytes", return_value=2 * size - 2
        ):
            with self.assertRaisesRegex(
                app.UsageError,
                r"training images take .* GiB as uint8, more than 50% of "
                r"the device's .* Train on the TensorFlow backend",
            ):
                train_jax.check_fits(config, info)

    def test_ratio_is_refused_for_a_folder(self):
        with self.assertRaisesRegex(app.UsageError, "takes no long-tail"):
            train_on_folder(self.data, os.path.join(self.root, "y"), ratio=10.0)


class MixedSizesTest(FolderTestCase):
    ROOT, DATA, COUNTS = "mixed", "data", (6, 4, 2)

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        # A class of larger RGB images: 3 of the 15 training images.
        make_gray_folder(
            os.path.join(cls.root, "data"), size=(36, 30), counts=(0, 0, 0, 3)
        )
        for name in os.listdir(os.path.join(cls.data, "train", "dog")):
            path = os.path.join(cls.data, "train", "dog", name)
            Image.open(path).convert("RGB").save(path)

    def test_mixed_sizes_are_refused_naming_two(self):
        with self.assertRaises(app.UsageError) as caught:
            train_on_folder(self.data, os.path.join(self.root, "refused"))
        message = str(caught.exception)
        self.assertRegex(
            message,
            r"has images of different sizes: \S+ is \d+x\d+ and \S+ is "
            r"\d+x\d+ \(height x width\)\. Pass --image_size",
        )
        self.assertIn("28x28", message)
        self.assertIn("36x30", message)

    def test_image_size_resizes_and_the_export_takes_any_size(self):
        model_dir = os.path.join(self.root, "resized")
        metrics = train_on_folder(self.data, model_dir, image_size="24,20")
        self.assertEqual(metrics["class_names"], list(CLASSES[:4]))
        info = ResolvedConfig.read(model_dir).data.info()
        self.assertEqual(info.image_shape, (24, 20, 1))  # gray: 12 of 15
        loaded = tf.saved_model.load(metrics["export_dir"])
        serve = loaded.signatures["serving_default"]
        for shape in ([2, 28, 28, 1], [1, 36, 30, 1]):
            out = serve(images=tf.zeros(shape, tf.uint8))
            self.assertEqual(out["logits"].shape, (shape[0], 4))
            self.assertEqual(out["class_names"].shape, (shape[0],))
