"""Tests for launch.reproduce's spec (rows -> runs -> data), runner records
and machine facts."""

import os

import keras
import tensorflow as tf
from absl import app
from absl import flags
from absl.testing import flagsaver

import la_keras
from launch import reproduce
from launch.reproduce import machine
from launch.reproduce import runner
from launch.reproduce import spec
from tests.launch import helpers
from tests.test_case import TestCase

FLAGS = flags.FLAGS


def setUpModule():
    helpers.define_all_flags()
    reproduce.define_flags()


def _holdout_flag(args):
    (flag,) = [a for a in args if a.startswith("--holdout_fraction=")]
    return float(flag.split("=", 1)[1])


class RowDataTest(TestCase):
    """Which rows train on the whole set and which on the holdout run."""

    def _args(self, run):
        with flagsaver.flagsaver(budget="smoke", train_flag=[]):
            return spec.train_args(FLAGS, "cifar10_lt", 3, run, "/r")

    def test_compared_rows_train_on_the_whole_set(self):
        compared = [row for row in spec.ROWS if row.official]
        self.assertEqual(
            [row.label for row in compared],
            ["ERM", "Logit adjustment post-hoc (τ = 1)", "Logit-adjusted loss"],
        )
        for row in compared:
            self.assertEqual(_holdout_flag(self._args(row.run)), 0.0, row)

    def test_every_untuned_row_trains_on_the_whole_set(self):
        for row in spec.ROWS:
            tuned = row.key in ("tuned", "adjusted_tuned")
            fraction = _holdout_flag(self._args(row.run))
            self.assertEqual(fraction, 0.1 if tuned else 0.0, row)
            self.assertEqual(row.run == "holdout", tuned, row)

    def test_holdout_run_is_the_baseline_with_a_holdout(self):
        baseline, holdout = self._args("baseline"), self._args("holdout")
        self.assertEqual(
            [
                a.replace("/baseline", "")
                for a in baseline
                if "holdout" not in a
            ],
            [a for a in holdout if "holdout" not in a],
        )
        self.assertIn("--seed=3", holdout)
        self.assertIn("--holdout_fraction=0.1", holdout)
        self.assertEqual(spec.HOLDOUT_FRACTION, 0.1)

    def test_runs_of_methods(self):
        self.assertEqual(
            spec.runs_for(["erm", "la_loss"]), ["baseline", "la_loss"]
        )
        self.assertEqual(spec.runs_for(["la_posthoc"]), ["baseline", "holdout"])
        self.assertEqual(
            spec.runs_for(["weight_norm"]), ["baseline", "holdout"]
        )
        self.assertEqual(spec.runs_for(spec.METHODS), list(spec.RUNS))

    def test_holdout_train_flag_is_refused(self):
        with flagsaver.flagsaver(
            methods=["erm"], seeds=["0"], train_flag=["--holdout_fraction=0.2"]
        ):
            with self.assertRaisesRegex(app.UsageError, "holdout"):
                reproduce.run(FLAGS)

    def test_each_plot_fits_plot_per_class(self):
        # la_keras.runs.reporting.plot_per_class draws at most four curves (one
        # marker each); one plot per training set keeps every curve.
        labels = {row.label: row for row in spec.ROWS}
        for whole in (True, False):
            group = [
                label
                for label in spec.PLOT_ROWS
                if (spec.holdout_fraction(labels[label].run) == 0) == whole
            ]
            self.assertLessEqual(len(group), 4)
            self.assertNotEqual(group, [])


class RunnerTest(TestCase):
    def test_run_subprocess_records_time_command_and_machine(self):
        run_dir = os.path.join(self.get_temp_dir(), "run")
        self.assertTrue(
            runner.run_subprocess("platform", ["--terse"], run_dir, "smoke")
        )
        self.assertFalse(
            runner.run_subprocess("launch.no_such_module", [], run_dir, "short")
        )
        timing = runner.read_json(os.path.join(run_dir, runner.WALL_TIME))
        self.assertEqual(sorted(timing), ["launch.no_such_module", "platform"])
        self.assertTrue(all(t > 0 for t in timing.values()))
        record = runner.read_json(os.path.join(run_dir, runner.RECORD))
        self.assertEqual(record["budget"], "short")
        self.assertEqual(record["commands"]["platform"], ["--terse"])
        # One machine ran both: recorded once.
        self.assertEqual(record["environments"], [machine.describe()])
        with open(os.path.join(run_dir, "platform.log")) as f:
            self.assertIn("Linux", f.read())

    def test_wall_time_adds_up_over_reruns(self):
        run_dir = os.path.join(self.get_temp_dir(), "rerun")
        runner.run_subprocess("platform", [], run_dir, "smoke")
        first = runner.read_json(os.path.join(run_dir, runner.WALL_TIME))
        runner.run_subprocess("platform", [], run_dir, "smoke")
        second = runner.read_json(os.path.join(run_dir, runner.WALL_TIME))
        self.assertGreater(second["platform"], first["platform"])


class MachineTest(TestCase):
    def test_describe_reads_this_machine(self):
        env = machine.describe()
        self.assertEqual(env["cores"], os.cpu_count())
        self.assertEqual(env["tensorflow"], tf.__version__)
        self.assertEqual(env["keras"], keras.__version__)
        self.assertEqual(env["la_keras"], la_keras.__version__)
        devices = [
            d
            for d in tf.config.list_physical_devices()
            if d.device_type != "CPU"
        ]
        self.assertEqual(len(env["accelerators"]), len(devices))
        self.assertNotEqual(env["cpu"], "")

    def test_texts(self):
        env = dict(
            cpu="Fake CPU",
            cores=3,
            accelerators=[],
            python="3.0",
            tensorflow="1",
            keras="2",
            la_keras="0.9",
        )
        self.assertEqual(
            machine.hardware_text(env),
            "CPU: Fake CPU, 3 cores; accelerators visible to TensorFlow: none",
        )
        env["accelerators"] = ["GPU:0", "GPU:1"]
        self.assertIn("TensorFlow: GPU:0, GPU:1", machine.hardware_text(env))
        self.assertEqual(
            machine.versions_text(env),
            "python 3.0, tensorflow 1, keras 2, la_keras 0.9",
        )


if __name__ == "__main__":
    tf.test.main()


def test_dataset_dir_names_are_one_safe_path_component():
    from launch.reproduce import spec

    assert spec.dataset_dir_name("cifar10_lt") == "cifar10_lt"
    names = {
        spec.dataset_dir_name(d)
        for d in ("folder:/data/a/pets", "folder:/data/b/pets/", "tfds:pets")
    }
    assert len(names) == 3  # the same last part, other paths: other names
    for name in names:
        assert "/" not in name and ":" not in name
    assert spec.dataset_dir_name("folder:/data/a/pets").startswith(
        "folder-pets-"
    )
