"""Tests for prepared datasets: launch.prepare and `prepared:PATH`."""

import os
import subprocess
import sys

import numpy as np
from absl import flags
from absl.testing import flagsaver

from la_keras import datasets
from la_keras.datasets import prepared
from la_keras.datasets.info import DatasetInfo
from launch import prepare
from launch import train
from tests.launch import helpers
from tests.test_case import TestCase

FLAGS = flags.FLAGS


def setUpModule():
    helpers.define_all_flags()
    prepare.define_flags()


def _arrays(dataset):
    images, labels = [], []
    for image, label in dataset:
        images.append(image.numpy())
        labels.append(int(label))
    return np.stack(images), np.array(labels)


class PreparedTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helpers.define_all_flags()
        prepare.define_flags()
        cls.path = os.path.join(cls.get_temp_dir_cls(), "test.prepared")
        with flagsaver.flagsaver(
            dataset="test", holdout_fraction=0.2, seed=3, output=cls.path
        ):
            prepare.run(FLAGS)

    @staticmethod
    def get_temp_dir_cls():
        import tempfile

        return tempfile.mkdtemp()

    def test_equals_what_load_gives(self):
        name = prepared.PREFIX + self.path
        for split in ("train", "test", "holdout"):
            got, got_info = datasets.load(name, split)
            want, want_info = datasets.load(
                "test", split, holdout_fraction=0.2, seed=3
            )
            got_images, got_labels = _arrays(got)
            want_images, want_labels = _arrays(want)
            np.testing.assert_array_equal(got_images, want_images)
            np.testing.assert_array_equal(got_labels, want_labels)
            np.testing.assert_array_equal(
                got_info.train_counts, want_info.train_counts
            )
            np.testing.assert_allclose(got_info.priors, want_info.priors)
            self.assertEqual(got_info.num_examples, want_info.num_examples)
            self.assertEqual(got_info.class_names, want_info.class_names)
        meta = prepared.read_metadata(self.path)
        self.assertEqual(meta["source"]["dataset"], "test")
        self.assertEqual(meta["source"]["holdout_fraction"], 0.2)

    def test_holdout_is_fixed_by_the_file(self):
        name = prepared.PREFIX + self.path
        with self.assertRaisesRegex(ValueError, "has a holdout split of its"):
            datasets.load(name, "train", holdout_fraction=0.1)
        with self.assertRaisesRegex(ValueError, "has a holdout split of its"):
            prepared.split_arrays(self.path, "train", holdout_fraction=0.1)

    def test_holdout_taken_from_a_file_without_one(self):
        path = os.path.join(self.get_temp_dir(), "whole.prepared")
        with flagsaver.flagsaver(
            dataset="test", holdout_fraction=0.0, seed=0, output=path
        ):
            prepare.run(FLAGS)
        name = prepared.PREFIX + path
        with self.assertRaisesRegex(ValueError, "--holdout_fraction=0.1"):
            prepared.split_arrays(path, "holdout")
        for seed in (0, 3):
            for split in ("train", "test", "holdout"):
                got, got_info = datasets.load(
                    name, split, holdout_fraction=0.25, seed=seed
                )
                images, labels, info = prepared.split_arrays(
                    path, split, name, holdout_fraction=0.25, seed=seed
                )
                # The TensorFlow and the numpy reader set aside the same.
                got_images, got_labels = _arrays(got)
                np.testing.assert_array_equal(got_images, images)
                np.testing.assert_array_equal(got_labels, labels)
                self.assertEqual(got_info.num_examples, info.num_examples)
                np.testing.assert_array_equal(
                    got_info.train_counts, info.train_counts
                )
                np.testing.assert_allclose(
                    info.priors, info.train_counts / info.train_counts.sum()
                )
                if seed:
                    continue
                # Seed 0 keeps each class's first images, so the file's
                # holdout is the one the source dataset gives.
                want, want_info = datasets.load(
                    "test", split, holdout_fraction=0.25, seed=0
                )
                want_images, want_labels = _arrays(want)
                np.testing.assert_array_equal(images, want_images)
                np.testing.assert_array_equal(labels, want_labels)
                self.assertEqual(info.num_examples, want_info.num_examples)
        train = prepared.split_arrays(path, "train")[1]
        holdout = prepared.split_arrays(path, "holdout", None, 0.25, 3)[1]
        self.assertGreater(len(holdout), 0)
        np.testing.assert_array_equal(
            np.bincount(train),
            np.bincount(holdout, minlength=3)
            + np.bincount(
                prepared.split_arrays(path, "train", None, 0.25, 3)[1]
            ),
        )

    def test_damaged_and_missing_files(self):
        with open(self.path, "rb") as f:
            data = f.read()
        truncated = os.path.join(self.get_temp_dir(), "cut.prepared")
        with open(truncated, "wb") as f:
            f.write(data[: len(data) // 2])
        with self.assertRaisesRegex(ValueError, f"{truncated} is damaged"):
            prepared.read(truncated)
        with self.assertRaisesRegex(FileNotFoundError, "launch.prepare"):
            prepared.read(os.path.join(self.get_temp_dir(), "none"))

    def test_single_byte_flips_name_the_file(self):
        # A small file, so that the flips also land in the zip headers, the
        # LZMA streams and the .npy headers, not only in the image bytes.
        rng = np.random.default_rng(0)
        splits = {
            "train": (
                rng.integers(0, 256, (12, 4, 4, 3)),
                rng.integers(0, 3, 12),
            ),
            "test": (
                rng.integers(0, 256, (5, 4, 4, 3)),
                rng.integers(0, 3, 5),
            ),
        }
        info = DatasetInfo(
            name="small",
            num_classes=3,
            class_names=["a", "b", "c"],
            train_counts=np.array([4, 4, 4]),
            priors=np.array([1 / 3] * 3),
            image_shape=(4, 4, 3),
            num_examples={"train": 12, "test": 5},
            preprocessing="cifar",
        )
        original = os.path.join(self.get_temp_dir(), "small.prepared")
        prepared.write(original, splits, info, {"dataset": "small"})
        with open(original, "rb") as f:
            data = f.read()
        # Evenly spaced over the file, and denser over its zip directory.
        offsets = np.unique(
            np.concatenate(
                [
                    np.linspace(0, len(data) - 1, 80),
                    np.linspace(len(data) - 400, len(data) - 1, 40),
                ]
            ).astype(int)
        )
        flipped = os.path.join(self.get_temp_dir(), "flipped.prepared")
        outcomes = {"identical": 0, "damaged": 0}
        for offset in offsets:
            damaged = bytearray(data)
            damaged[offset] ^= 0xFF
            with open(flipped, "wb") as f:
                f.write(damaged)
            try:
                got = prepared.read(flipped)
            except ValueError as e:
                message = str(e)
                self.assertIn(f"{flipped} is damaged", message, offset)
                self.assertNotIn("\n", message, offset)
                outcomes["damaged"] += 1
                continue
            for split, (images, labels) in splits.items():
                np.testing.assert_array_equal(got.splits[split][0], images)
                np.testing.assert_array_equal(got.splits[split][1], labels)
            outcomes["identical"] += 1
        # Most flips break the file; a few land in fields nothing reads.
        self.assertGreater(outcomes["damaged"], len(offsets) // 2, outcomes)

    def test_checksum_mismatch(self):
        data = prepared.read(self.path)
        images, labels = data.splits["train"]
        changed = dict(data.splits, train=(images, labels))
        other = os.path.join(self.get_temp_dir(), "changed.prepared")
        _, info = datasets.load(prepared.PREFIX + self.path, "train")
        prepared.write(other, changed, info, data.metadata["source"])
        # Tamper with one stored checksum: the arrays no longer match it.
        import json
        import zipfile

        with zipfile.ZipFile(other) as archive:
            members = {n: archive.read(n) for n in archive.namelist()}
        meta = json.loads(members["metadata.json"])
        meta["sha256"]["train_images"] = "0" * 64
        members["metadata.json"] = json.dumps(meta).encode()
        with zipfile.ZipFile(other, "w") as archive:
            for name, content in members.items():
                archive.writestr(name, content)
        with self.assertRaisesRegex(ValueError, "checksum of train_images"):
            prepared.read(other)

    def test_read_needs_no_tensorflow(self):
        # TensorFlow blocked, Keras on JAX: as on a machine without TF.
        script = (
            "import sys\n"
            "sys.modules['tensorflow'] = None\n"
            "from la_keras.datasets import prepared\n"
            "data = prepared.read(sys.argv[1])\n"
            "images, labels, info = prepared.split_arrays(sys.argv[1], 'test')\n"
            "print(sorted(data.splits), data.splits['train'][0].shape,\n"
            "      info.num_examples['test'] == len(labels) == len(images))\n"
        )
        result = subprocess.run(
            [sys.executable, "-c", script, self.path],
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ, KERAS_BACKEND="jax"),
        )
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn("['holdout', 'test', 'train']", result.stdout)
        self.assertTrue(result.stdout.strip().endswith("True"))

    def test_info_without_tensorflow_equals_load(self):
        _, expected = datasets.load(f"prepared:{self.path}", "train")
        *_, info = prepared.split_arrays(self.path, "train")
        self.assertEqual(info.num_classes, expected.num_classes)
        self.assertEqual(info.class_names, expected.class_names)
        self.assertEqual(info.num_examples, expected.num_examples)
        self.assertEqual(info.image_shape, expected.image_shape)
        self.assertEqual(info.preprocessing, expected.preprocessing)
        self.assertAllEqual(info.train_counts, expected.train_counts)
        self.assertAllClose(info.priors, expected.priors)
        with self.assertRaisesRegex(ValueError, "has no 'validation' split"):
            prepared.split_arrays(self.path, "validation")

    def test_train_on_a_prepared_set(self):
        model_dir = os.path.join(self.get_temp_dir(), "run")
        overrides = dict(
            helpers.SMOKE_FLAGS,
            dataset=prepared.PREFIX + self.path,
            holdout_fraction=0.0,
            model_dir=model_dir,
            tb_log_dir=os.path.join(model_dir, "log"),
            epochs=1,
        )
        with flagsaver.flagsaver(**overrides):
            metrics = train.run(FLAGS)
        # The file's own holdout tunes tau.
        self.assertIsNotNone(metrics["holdout"])
        meta = prepared.read_metadata(self.path)
        self.assertEqual(
            metrics["train_examples"], meta["num_examples"]["train"]
        )
        self.assertEqual(
            metrics["holdout"]["num_examples"], meta["num_examples"]["holdout"]
        )
