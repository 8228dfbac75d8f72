"""Moved runs end to end (slow): preempted on one host and continued on
another, a folder run, a launch.reproduce output_dir. The fast checks, and
the traps these tests set where the run was, are in test_moved_runs.py."""

import glob
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from absl import app
from absl import flags
from absl.testing import flagsaver

from la_keras.training.checkpoints import checkpoint_dir
from la_keras.training.preemption import PREEMPTED_EXIT_CODE
from launch import evaluate
from launch import export
from tests.launch import helpers
from tests.launch.test_lock import _on_another_host
from tests.launch.test_moved_runs import files_naming
from tests.launch.test_moved_runs import make_prepared
from tests.launch.test_moved_runs import set_traps
from tests.test_case import TestCase

FLAGS = flags.FLAGS


def setUpModule():
    helpers.define_all_flags()


def _steps(model_dir, suffix):
    paths = glob.glob(
        os.path.join(checkpoint_dir(model_dir), f"ckpt-*{suffix}")
    )
    return sorted(int(re.search(r"ckpt-(\d+)", p).group(1)) for p in paths)


JAX = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}


@pytest.mark.slow
class PreemptedRunMovesTest(TestCase):
    """SIGTERM on one host (exit 75), the run and its file moved, continued
    on another host on JAX; the TensorFlow backend refuses to resume it, and
    launch.evaluate / launch.export read it on TensorFlow."""

    def setUp(self):
        super().setUp()
        pytest.importorskip("jax")

    def test_sigterm_then_move_then_continue(self):
        root = self.get_temp_dir()
        old_data = os.path.join(root, "machine_a", "data.prepared")
        old_run = os.path.join(root, "machine_a", "run")
        new_data = os.path.join(root, "machine_b", "files", "d.prepared")
        new_run = os.path.join(root, "machine_b", "runs", "run")
        make_prepared(old_data)
        other = make_prepared(
            os.path.join(root, "other.prepared"), holdout_fraction=0.2
        )

        def args(model_dir, data):
            # 9 steps an epoch, SIGTERM seen after each step, a checkpoint
            # every 4 steps: stopped inside the second epoch.
            return helpers.smoke_args(
                model_dir,
                dataset=f"prepared:{data}",
                holdout_fraction=0.0,
                epochs=6,
                steps_per_loop=1,
                eval_every_epochs=100,
                checkpoint_every_steps=4,
            )

        prefix = _on_another_host("machine-a") or []
        log_path = os.path.join(root, "preempted.log")
        with open(log_path, "w") as log:
            process = subprocess.Popen(
                [*prefix, sys.executable, "-m", "launch.train"]
                + args(old_run, old_data),
                stdout=log,
                stderr=subprocess.STDOUT,
                env=dict(helpers.env(), **JAX),
                cwd=helpers.REPO,
            )
        returncode = helpers.stop_when(
            process, lambda: any(s > 9 for s in _steps(old_run, ".npz"))
        )
        with open(log_path) as f:
            log = f.read()
        self.assertEqual(returncode, PREEMPTED_EXIT_CODE, log[-3000:])
        stopped = int(re.search(r"Stopped at step (\d+)", log).group(1))
        self.assertGreater(stopped, 9)
        if prefix:
            (lease,) = glob.glob(os.path.join(old_run, ".lock.*"))
            with open(lease) as f:
                self.assertEqual(json.load(f)["host"], "machine-a")

        os.makedirs(os.path.dirname(new_run))
        os.makedirs(os.path.dirname(new_data))
        shutil.move(old_run, new_run)
        shutil.move(old_data, new_data)
        set_traps(old_run, old_data, other)
        resumed = helpers.run_module(
            "launch.train", args(new_run, new_data), extra_env=JAX
        )
        self.assertEqual(resumed.returncode, 0, resumed.stderr[-3000:])
        self.assertIn(
            f"Resumed from {checkpoint_dir(new_run)}/ckpt-{stopped}.npz at "
            f"step {stopped}.",
            resumed.stderr,
        )
        self.assertEqual(_steps(new_run, ".npz")[-1], 6 * 9)
        self.assertEqual(files_naming(new_run, os.path.dirname(old_run)), set())

        # The TensorFlow backend cannot resume .npz checkpoints: one line.
        on_tf = helpers.run_module("launch.train", args(new_run, new_data))
        self.assertEqual(on_tf.returncode, 1)
        self.assertEqual(
            on_tf.stderr.strip().splitlines()[-1],
            f"launch.train: error: --model_dir={new_run} holds checkpoints of "
            f"the jax backend (ckpt-{6 * 9}.npz), which the tensorflow backend "
            "cannot resume: rerun with KERAS_BACKEND=jax, or use a new "
            "--model_dir.",
        )
        # They are read on TensorFlow by launch.evaluate and launch.export.
        with flagsaver.flagsaver(
            model_dir=new_run,
            dataset=f"prepared:{new_data}",
            output=os.path.join(root, "eval.json"),
        ):
            report = evaluate.run(FLAGS)
        self.assertEqual(
            report["source"], f"{checkpoint_dir(new_run)}/ckpt-54.npz"
        )
        with flagsaver.flagsaver(
            model_dir=new_run, dataset=f"prepared:{new_data}"
        ):
            exported = export.run(FLAGS)
        self.assertEqual(exported, os.path.join(new_run, "export"))
        self.assertTrue(
            os.path.exists(os.path.join(exported, "saved_model.pb"))
        )


@pytest.mark.slow
class MovedFolderRunTest(TestCase):
    """A `folder:` run moved with its folder: the index in its model_dir
    (relative paths) and the listing digest recognise the same files."""

    def test_moved_folder_run_resumes(self):
        from tests.launch import test_folder_runs

        root = self.get_temp_dir()
        old_data = os.path.join(root, "machine_a", "gray")
        old_run = os.path.join(root, "machine_a", "run")
        test_folder_runs.make_gray_folder(old_data)
        first = test_folder_runs.train_on_folder(old_data, old_run)
        new_data = os.path.join(root, "machine_b", "data", "pets")
        new_run = os.path.join(root, "machine_b", "run")
        os.makedirs(os.path.dirname(new_data))
        shutil.move(old_data, new_data)
        shutil.move(old_run, new_run)
        test_folder_runs.make_gray_folder(old_data, seed=1, counts=(3, 2))
        # Other images where the folder was: the run's index refuses them.
        with self.assertRaisesRegex(app.UsageError, "changed since"):
            test_folder_runs.train_on_folder(
                old_data, new_run, epochs=2, extend=True
            )
        metrics = test_folder_runs.train_on_folder(
            new_data, new_run, epochs=2, extend=True
        )
        self.assertEqual(metrics["step"], 2 * first["step"])
        log_dir = os.path.join(new_run, "log")
        self.assertEqual(
            helpers.trained_steps(log_dir), [first["step"], metrics["step"]]
        )


@pytest.mark.slow
class MovedReproduceTest(TestCase):
    """A launch.reproduce output_dir moved with its prepared file reruns
    without retraining (its folder is named by the file's checksum)."""

    def test_moved_output_dir_trains_nothing(self):
        root = self.get_temp_dir()
        old, new = os.path.join(root, "a"), os.path.join(root, "b")
        data = make_prepared(os.path.join(old, "t.prepared"))

        def reproduce(base, data):
            args = [
                f"--datasets=prepared:{data}",
                "--seeds=0",
                "--budget=smoke",
                "--methods=erm",
                f"--output_dir={base}/out",
            ]
            result = helpers.run_module("launch.reproduce", args, timeout=600)
            self.assertEqual(result.returncode, 0, result.stderr[-3000:])
            with open(os.path.join(base, "out", "RESULTS.md")) as f:
                return result, f.read()

        _, first = reproduce(old, data)
        shutil.move(old, new)
        moved = os.path.join(new, "renamed.prepared")
        shutil.move(os.path.join(new, "t.prepared"), moved)
        result, second = reproduce(new, moved)
        self.assertIn("Skipping baseline", result.stderr)
        self.assertNotIn("python -m launch.train --", result.stderr)
        erm = re.compile(r"^\| ERM \|.*$", re.M)
        self.assertEqual(erm.findall(second), erm.findall(first))
        self.assertLen(erm.findall(second), 1)
