"""A run that moves: its model_dir and prepared file copied to other paths.

"Another machine" is another folder here (and, for the SIGTERM test in
test_moved_runs_end_to_end.py, another host name: `unshare -u` as root, see
test_lock.py). What the old
location held is replaced by traps: a file where the old model_dir was (any
read or write there fails) and a prepared file of other contents where the
old prepared file was (data read from the old path would be other data).
"""

import glob
import json
import os
import shutil
from unittest import mock

import tensorflow as tf
from absl import app
from absl import flags
from absl.testing import flagsaver

from la_keras.datasets import folder_index
from la_keras.datasets import prepared
from la_keras.runs import data_config
from la_keras.runs import resume_check
from la_keras.runs.resolved import ResolvedConfig
from la_keras.training.checkpoints import checkpoint_dir
from launch import evaluate
from launch import export
from launch import prepare
from launch.reproduce import spec
from tests.launch import helpers
from tests.launch import shared_runs
from tests.test_case import TestCase

FLAGS = flags.FLAGS
# The run's flags besides its paths: 9 steps an epoch.
RUN_FLAGS = dict(helpers.SMOKE_FLAGS, holdout_fraction=0.0, epochs=1)
RUN_FLAGS_OF_TEST = {k: v for k, v in RUN_FLAGS.items() if k != "dataset"}


def setUpModule():
    helpers.define_all_flags()


def make_prepared(path, holdout_fraction=0.1):
    """A prepared file of the tiny `test` dataset (in-process prepare)."""
    with flagsaver.flagsaver(
        dataset="test", holdout_fraction=holdout_fraction, output=path
    ):
        return prepare.run(FLAGS)


def files_naming(root, text):
    """Paths (relative to `root`) of the files whose bytes contain `text`."""
    found = set()
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as f:
                if text.encode() in f.read():
                    found.add(os.path.relpath(path, root))
    return found


def set_traps(old_run, old_data, other_data):
    """A file where the run was, other data where its prepared file was."""
    os.makedirs(os.path.dirname(old_run), exist_ok=True)
    with open(old_run, "w") as f:
        f.write("trap: the run moved away\n")
    shutil.copy(other_data, old_data)


def _train(model_dir, data, **overrides):
    return shared_runs.train_with(
        shared_runs.run_flags(
            model_dir, RUN_FLAGS, {"dataset": f"prepared:{data}"}, **overrides
        )
    )


class MovedRunTest(TestCase):
    """A TensorFlow run and its prepared file moved: resumed, evaluated."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = os.path.join(tf.compat.v1.test.get_temp_dir(), "moved")
        os.makedirs(cls.root, exist_ok=True)
        cls.data = make_prepared(os.path.join(cls.root, "test.prepared"))
        cls.other = make_prepared(
            os.path.join(cls.root, "other.prepared"), holdout_fraction=0.2
        )

    def test_moved_run_resumes_from_its_checkpoint(self):
        from absl import logging as absl_logging

        self.addCleanup(
            absl_logging.set_verbosity, absl_logging.get_verbosity()
        )
        absl_logging.set_verbosity(absl_logging.INFO)
        old_root = os.path.join(self.get_temp_dir(), "machine_a")
        new_root = os.path.join(self.get_temp_dir(), "machine_b")
        old_data = os.path.join(old_root, "data", "cifar.prepared")
        old_run = os.path.join(old_root, "runs", "run")
        os.makedirs(os.path.dirname(old_data))
        shutil.copy(self.data, old_data)
        metrics = _train(old_run, old_data)
        self.assertEqual((metrics["step"], metrics["epoch"]), (9, 1))
        # The old paths in the saved state: the flags and the report, which
        # a resume does not read (the traps below show it).
        self.assertEqual(
            files_naming(old_run, old_root),
            {"flags.json", "flags.txt", "metrics.json"},
        )
        with open(os.path.join(old_run, "flags.json")) as f:
            recorded = json.load(f)
        self.assertEqual(
            {k for k, v in recorded.items() if old_root in str(v)},
            {"model_dir", "tb_log_dir", "export_dir", "dataset"},
        )
        checksum = prepared.checksum(self.data)
        self.assertEqual(recorded["dataset_checksum"], checksum)

        new_run = os.path.join(new_root, "elsewhere", "run")
        new_data = os.path.join(new_root, "files", "renamed.prepared")
        os.makedirs(os.path.dirname(new_run))
        os.makedirs(os.path.dirname(new_data))
        shutil.move(old_run, new_run)
        shutil.move(old_data, new_data)
        set_traps(old_run, old_data, self.other)
        other = prepared.checksum(self.other)

        # launch.evaluate / launch.export: the recorded path holds other
        # data now (refused, both checksums named); the run's file is found
        # at its new path by its checksum.
        refused = rf"checksum is {other}, the run's is {checksum}"
        with flagsaver.flagsaver(model_dir=new_run):
            with self.assertRaisesRegex(app.UsageError, refused):
                evaluate.run(FLAGS)
        with flagsaver.flagsaver(
            model_dir=new_run, dataset=f"prepared:{old_data}"
        ):
            with self.assertRaisesRegex(app.UsageError, refused):
                export.run(FLAGS)
        output = os.path.join(self.get_temp_dir(), "eval.json")
        with flagsaver.flagsaver(
            model_dir=new_run, dataset=f"prepared:{new_data}", output=output
        ):
            report = evaluate.run(FLAGS)
        self.assertEqual(report["source"], f"{checkpoint_dir(new_run)}/ckpt-9")
        self.assertAllClose(
            report["test"]["raw"]["per_class_accuracy"],
            metrics["test"]["raw"]["per_class_accuracy"],
        )

        # launch.train: other contents at the recorded path are refused,
        # both checksums named; the file at its new path resumes the run.
        with self.assertRaisesRegex(
            app.UsageError,
            rf"holds a run with other flags: the checksum of --dataset "
            rf"{checksum} -> {other}\. .*\(checksum {checksum}\)",
        ):
            _train(new_run, old_data, epochs=2, extend=True)
        log_dir = os.path.join(new_run, "log")
        old_events = helpers.event_files(os.path.join(log_dir, "train"))
        with self.assertLogs(level="INFO") as logs:
            metrics = _train(new_run, new_data, epochs=2, extend=True)
        self.assertIn(
            f"Resumed from {checkpoint_dir(new_run)}/ckpt-9 at step 9.",
            "\n".join(logs.output),
        )
        # Steps 10 to 18 only: a restart from scratch would log step 9 too.
        self.assertEqual(helpers.trained_steps(log_dir, old_events), [18])
        self.assertEqual((metrics["step"], metrics["epoch"]), (18, 2))
        self.assertEqual(metrics["export_dir"], os.path.join(new_run, "export"))
        # Nothing the run keeps names the old machine's paths any more.
        self.assertEqual(files_naming(new_run, old_root), set())
        with open(old_run) as f:
            self.assertEqual(f.read(), "trap: the run moved away\n")

    def test_run_data_found_by_checksum(self):
        model_dir = os.path.join(self.get_temp_dir(), "run")
        gone = os.path.join(self.get_temp_dir(), "gone.prepared")
        shutil.copy(self.data, gone)
        with flagsaver.flagsaver(
            **dict(RUN_FLAGS, dataset=f"prepared:{gone}", model_dir=model_dir)
        ):
            ResolvedConfig.from_flags(FLAGS).write(model_dir)
        self.assertEqual(
            ResolvedConfig.read(model_dir).with_data().data.dataset,
            f"prepared:{gone}",
        )
        os.remove(gone)
        read = ResolvedConfig.read(model_dir)
        with self.assertRaisesRegex(
            app.UsageError,
            r"trained on --dataset=prepared:\S+gone.prepared, which is not "
            r"there \(a moved run\?\): pass --dataset=prepared:PATH",
        ):
            read.with_data()
        moved = read.with_data(f"prepared:{self.data}")
        self.assertEqual(moved.data.dataset, f"prepared:{self.data}")
        self.assertEqual(
            moved.data.dataset_checksum, prepared.checksum(self.data)
        )
        with self.assertRaisesRegex(
            app.UsageError, "--dataset=test conflicts with the run"
        ):
            read.with_data("test")
        # A run recorded before checksums: only its recorded path is used.
        with open(os.path.join(model_dir, "flags.json")) as f:
            flat = json.load(f)
        flat.pop("dataset_checksum")
        with open(os.path.join(model_dir, "flags.json"), "w") as f:
            json.dump(flat, f)
        with self.assertRaisesRegex(app.UsageError, "recorded no checksum"):
            ResolvedConfig.read(model_dir).with_data(f"prepared:{self.data}")

    def test_checkpoints_of_the_other_backend_are_refused(self):
        model_dir = os.path.join(self.get_temp_dir(), "other_backend")
        with flagsaver.flagsaver(
            **dict(
                RUN_FLAGS, dataset=f"prepared:{self.data}", model_dir=model_dir
            )
        ):
            config = ResolvedConfig.from_flags(FLAGS)
        directory = checkpoint_dir(model_dir)
        os.makedirs(directory)
        config.check_resume(has_checkpoint=False)  # nothing there: a new run
        for name in ("ckpt-9.npz", "ckpt-27.npz"):
            open(os.path.join(directory, name), "w").close()
        with self.assertRaisesRegex(
            app.UsageError,
            r"^--model_dir=\S+ holds checkpoints of the jax backend "
            r"\(ckpt-27.npz\), which the tensorflow backend cannot resume: "
            r"rerun with KERAS_BACKEND=jax, or use a new --model_dir.$",
        ):
            config.check_resume(has_checkpoint=False)
        for name in os.listdir(directory):
            os.remove(os.path.join(directory, name))
        open(os.path.join(directory, "ckpt-9.index"), "w").close()
        with mock.patch("keras.backend.backend", return_value="jax"):
            with self.assertRaisesRegex(
                app.UsageError,
                "of the tensorflow backend .* KERAS_BACKEND=tensorflow",
            ):
                config.check_resume(has_checkpoint=False)

    def test_reproduce_names_a_prepared_file_by_its_contents(self):
        copy = os.path.join(self.get_temp_dir(), "elsewhere", "x.prepared")
        os.makedirs(os.path.dirname(copy))
        shutil.copy(self.data, copy)
        name = spec.dataset_dir_name(f"prepared:{self.data}")
        self.assertEqual(
            name, f"prepared-test-{prepared.checksum(self.data)[:8]}"
        )
        self.assertEqual(spec.dataset_dir_name(f"prepared:{copy}"), name)
        self.assertNotEqual(
            spec.dataset_dir_name(f"prepared:{self.other}"), name
        )
        with self.assertRaisesRegex(app.UsageError, "not found"):
            spec.dataset_dir_name(f"prepared:{copy}.missing")
        # A file prepared from a folder is named by the folder's last part.
        from_folder = os.path.join(self.get_temp_dir(), "f.prepared")
        data = prepared.read(self.data)
        prepared.write(
            from_folder,
            data.splits,
            prepared.dataset_info(data),
            {"dataset": "folder:/data/my pets/"},
        )
        self.assertEqual(
            spec.dataset_dir_name(f"prepared:{from_folder}"),
            f"prepared-my_pets-{prepared.checksum(from_folder)[:8]}",
        )


def _flat(dataset, checksum, **extra):
    return dict(dataset=dataset, dataset_checksum=checksum, **extra)


class ResumeCheckTest(TestCase):
    """`resume_check`: data compared by kind and checksum, paths moved."""

    def test_prepared_and_folder_data_are_compared_by_checksum(self):
        changed = resume_check.changed_fields
        same = changed(
            _flat("prepared:/a/x", "c1"), _flat("prepared:/b/y", "c1"), False
        )
        self.assertEqual(same, {})
        moved_folder = changed(
            _flat("folder:/a/pets", "d1"), _flat("folder:/b/pets", "d1"), False
        )
        self.assertEqual(moved_folder, {})
        other = changed(
            _flat("prepared:/a/x", "c1"), _flat("prepared:/a/x", "c2"), False
        )
        self.assertEqual(other, {"dataset_checksum": ("c1", "c2")})
        message = resume_check.refusal("/m", other, {}, False)
        self.assertEqual(
            message,
            "--model_dir=/m holds a run with other flags: the checksum of "
            "--dataset c1 -> c2. Rerun with the old values or use a new "
            "--model_dir. --dataset must be the data the run was trained on "
            "(checksum c1), wherever it lies now.",
        )
        kind = changed(
            _flat("folder:/a/x", "c1"), _flat("prepared:/a/x", "c1"), False
        )
        self.assertEqual(set(kind), {"dataset"})
        # Recorded before checksums: the path is compared, as it was.
        old = {"dataset": "prepared:/a/x"}
        self.assertEqual(changed(old, _flat("prepared:/a/x", "c1"), False), {})
        self.assertEqual(
            set(changed(old, _flat("prepared:/b/x", "c1"), False)),
            {"dataset"},
        )

    def test_paths_inside_the_model_dir_follow_it(self):
        moved = resume_check.moved_path
        self.assertEqual(moved("/a/run/log", "/a/run", "/b/r"), "/b/r/log")
        self.assertEqual(moved("/a/run//export/", "/a/run/", "/b"), "/b/export")
        self.assertEqual(moved("/a/run", "/a/run", "/b"), "/b")
        self.assertEqual(moved("/a/runs/log", "/a/run", "/b"), "/a/runs/log")
        self.assertEqual(moved("/tmp/log", "/a/run", "/b"), "/tmp/log")
        self.assertEqual(moved("run/log", "run", "/b/run"), "/b/run/log")
        self.assertEqual(moved("gs://k/m/log", "gs://k/m", "/x"), "/x/log")
        self.assertIsNone(moved(None, "/a", "/b"))

    def test_read_moves_the_recorded_output_paths(self):
        model_dir = os.path.join(self.get_temp_dir(), "old")
        with flagsaver.flagsaver(
            **RUN_FLAGS_OF_TEST,
            model_dir=model_dir,
            tb_log_dir=os.path.join(model_dir, "log"),
            export_dir=os.path.join(model_dir, "serving"),
        ):
            ResolvedConfig.from_flags(FLAGS).write(model_dir)
        new = os.path.join(self.get_temp_dir(), "new")
        shutil.move(model_dir, new)
        read = ResolvedConfig.read(new)
        self.assertEqual(read.model_dir, new)
        self.assertEqual(read.tb_log_dir, os.path.join(new, "log"))
        self.assertEqual(read.export_dir, os.path.join(new, "serving"))

    def test_folder_checksum_ignores_where_the_folder_lies(self):
        from tests.launch.test_folder_runs import make_gray_folder

        first = make_gray_folder(os.path.join(self.get_temp_dir(), "a"))
        second = os.path.join(self.get_temp_dir(), "b", "moved")
        shutil.copytree(first, second)
        checksum = data_config.dataset_checksum(f"folder:{first}")
        self.assertEqual(
            data_config.dataset_checksum(f"folder:{second}"), checksum
        )
        listing = folder_index.list_files(first)[2]
        self.assertEqual(checksum, folder_index.listing_digest(listing))
        os.remove(glob.glob(os.path.join(second, "train", "*", "*.png"))[0])
        self.assertNotEqual(
            data_config.dataset_checksum(f"folder:{second}"), checksum
        )
        self.assertIsNone(data_config.dataset_checksum("cifar10_lt"))
