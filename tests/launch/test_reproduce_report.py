"""RESULTS.md of launch.reproduce from fake run folders: every fact about a
run (budget, data, wall time, images/s, machine, versions, the table) comes
from the folders, not from the machine that writes the report."""

import json
import os
import re

import tensorflow as tf
from absl import flags
from absl.testing import flagsaver

from launch import reproduce
from launch.reproduce import runner
from launch.reproduce import spec
from tests.launch import helpers
from tests.test_case import TestCase

FLAGS = flags.FLAGS

ENVIRONMENT = dict(
    cpu="Fake CPU 9000",
    cores=96,
    accelerators=["GPU:0"],
    python="3.99.1",
    tensorflow="9.8.7",
    keras="6.5.4",
    la_keras="0.0.42",
)


def setUpModule():
    helpers.define_all_flags()
    reproduce.define_flags()


def _config(run, seed=0):
    mode = "loss" if run in ("la_loss", "ldam", "equalized") else "posthoc"
    loss = {"la_loss": "logit_adjusted", "ldam": "ldam"}.get(run, run)
    return dict(
        dataset="test",
        dataset_dir=None,
        ratio=100.0,
        profile="exp",
        seed=seed,
        holdout_fraction=spec.holdout_fraction(run),
        mode=mode,
        loss="crossentropy" if mode == "posthoc" else loss,
        tau=1.0,
        tau_grid=[0.0, 0.5, 1.0, 1.5],
        ldam_s=1.0 if run == "ldam" else None,
        classifier="normed" if run == "ldam" else "dense",
        model="resnet20",
        epochs=7,
        train_batch_size=16,
        momentum=0.9,
        nesterov=True,
        weight_decay=1e-4,
        base_learning_rate=0.1,
        schedule=[[1.0, 2.0], [0.1, 5.0]],
        jit_compile=True,
        strategy="mirrored",
    )


def _report(balanced, tau=None):
    report = dict(
        top1=0.5,
        balanced_accuracy=balanced,
        many=None,
        medium=None,
        few=balanced,
        per_class_accuracy=[balanced] * 10,
    )
    if tau is not None:
        report["tau"] = tau
    return report


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f)


def _fake_run(out, run, balanced, wall, **metrics_extra):
    run_dir = os.path.join(out, "test", "seed0", run)
    config = _config(run)
    test = {"raw": _report(balanced), "adjusted": _report(balanced + 0.01, 1)}
    metrics = dict(test=test, step=700, epoch=7, **metrics_extra)
    if run == "holdout":
        test["adjusted_tuned"] = _report(balanced + 0.02, 0.5)
        metrics["holdout"] = {"num_examples": 10, "tau_star": 0.5}
    _write(os.path.join(run_dir, "flags.json"), config)
    _write(os.path.join(run_dir, "metrics.json"), metrics)
    _write(os.path.join(run_dir, runner.WALL_TIME), {"launch.train": wall})
    _write(
        os.path.join(run_dir, runner.RECORD),
        {"budget": "short", "environments": [ENVIRONMENT]},
    )
    if run in spec.WEIGHT_NORM_RUNS:
        _write(
            os.path.join(run_dir, runner.WEIGHT_NORM),
            {
                "weight_norm": {
                    "taus": [0.0, 1.0, 3.0],
                    "tau_1": _report(balanced + 0.03, 1.0),
                    "tuned": _report(balanced + 0.04, 3.0)
                    if run == "holdout"
                    else None,
                }
            },
        )
    return run_dir


def _rows(text):
    return dict(re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|", text, re.M))


class ReportFromRunsTest(TestCase):
    def _write_report(self, out, methods=spec.METHODS):
        with flagsaver.flagsaver(
            datasets=["test"],
            methods=list(methods),
            seeds=["0"],
            budget="smoke",  # this invocation's; the runs say "short"
            output_dir=out,
            report_only=True,
            train_flag=[],
        ):
            path, failed = reproduce.run(FLAGS)
        self.assertEqual(failed, [])
        with open(path) as f:
            return f.read()

    def test_facts_come_from_the_run_folders(self):
        out = os.path.join(self.get_temp_dir(), "runs")
        balanced = {
            "baseline": 0.61,
            "holdout": 0.50,
            "la_loss": 0.7,
            "ldam": 0.4,
            "equalized": 0.3,
        }
        for run, value in balanced.items():
            _fake_run(out, run, value, wall=3725.0, images_per_second=123.4)
        text = self._write_report(out)

        # The table: 1 - balanced accuracy of each row's report.
        rows = _rows(text)
        self.assertEqual(rows["ERM"], "39.00 ± n/a (1 seed)")
        self.assertEqual(
            rows["Logit adjustment post-hoc (τ = 1)"], "38.00 ± n/a (1 seed)"
        )
        self.assertEqual(
            rows["Logit adjustment post-hoc (τ = τ*)"], "48.00 ± n/a (1 seed)"
        )
        self.assertEqual(
            rows["Weight normalisation (τ = 1)"], "36.00 ± n/a (1 seed)"
        )
        self.assertEqual(
            rows["Weight normalisation (τ = τ*)"], "46.00 ± n/a (1 seed)"
        )
        self.assertEqual(rows["Logit-adjusted loss"], "30.00 ± n/a (1 seed)")
        self.assertEqual(rows["Adaptive margin (LDAM)"], "60.00 ± n/a (1 seed)")
        self.assertEqual(rows["Equalised loss"], "70.00 ± n/a (1 seed)")
        # Budget from flags.json and reproduce.json, not from --budget.
        self.assertIn(
            "Budget `short`: 7 epochs of resnet20, batch 16, SGD (momentum "
            "0.9, Nesterov), weight decay 0.0001; learning rate 0.1 after a "
            "linear warm-up of 2 epoch(s), ×0.1 from epoch 5; XLA on.",
            text,
        )
        self.assertNotIn("Budget `smoke`", text)
        # Wall time and images/s of each run.
        self.assertIn(
            "- `holdout`, seed 0: launch.train 1:02:05; epoch 7 of 7, 700 "
            "steps × batch 16; 123.4 images/s in the training loop.",
            text,
        )
        self.assertIn("all trainings and evaluations: 5:10:25", text)
        # The machine and versions the runs recorded.
        self.assertIn(
            "CPU: Fake CPU 9000, 96 cores; accelerators visible to "
            "TensorFlow: GPU:0.",
            text,
        )
        self.assertIn(
            "python 3.99.1, tensorflow 9.8.7, keras 6.5.4, la_keras 0.0.42",
            text,
        )
        self.assertIn("Distribution strategy: mirrored.", text)
        # The τ grids the runs used.
        self.assertIn("τ* from {0, 1, 3}", text)
        self.assertIn("τ* from {0, 0.5, 1, 1.5}", text)
        # Plots: one per training set.
        root = os.path.join(out, "results")
        for name in ("test_per_class.png", "test_per_class_holdout.png"):
            self.assertTrue(os.path.exists(os.path.join(root, name)), name)

    def test_rows_and_their_data(self):
        out = os.path.join(self.get_temp_dir(), "data")
        for run in spec.RUNS:
            _fake_run(out, run, 0.5, wall=10.0, train_examples=4600)
        text = self._write_report(out)
        self.assertIn(
            "- `baseline` → ERM, Weight normalisation (τ = 1), Logit "
            "adjustment post-hoc (τ = 1). `--mode=posthoc --loss=crossentropy "
            "--tau=1 --holdout_fraction=0`.",
            text,
        )
        self.assertIn(
            "- `holdout` → Weight normalisation (τ = τ*), Logit adjustment "
            "post-hoc (τ = τ*). `--mode=posthoc --loss=crossentropy --tau=1 "
            "--holdout_fraction=0.1`.",
            text,
        )
        self.assertIn(
            "`--mode=loss --loss=ldam --holdout_fraction=0`. Loss: "
            "LDAM margin loss, Cao et al. 2019 (takes max_m, s) on a cosine "
            "classifier (NormedDense);",
            text,
        )
        # Sizes from metrics.json (train_examples, holdout.num_examples).
        self.assertIn(
            "Seed 0: trained on 4600 images, the whole long-tailed training "
            "set.",
            text,
        )
        self.assertIn(
            "Seed 0: trained on 4600 images; 10 (0.1 of each class) held out "
            "to choose τ*.",
            text,
        )
        # Without images_per_second: steps × batch over launch.train's time.
        self.assertIn("1120.0 images/s of launch.train wall time", text)

    def test_missing_runs_and_machine(self):
        out = os.path.join(self.get_temp_dir(), "partial")
        run_dir = _fake_run(out, "baseline", 0.5, wall=10.0)
        os.remove(os.path.join(run_dir, runner.RECORD))
        text = self._write_report(out, methods=["erm", "la_loss"])
        rows = _rows(text)
        self.assertEqual(rows["ERM"], "50.00 ± n/a (1 seed)")
        self.assertEqual(rows["Logit-adjusted loss"], "not run")
        self.assertIn("- `la_loss` → Logit-adjusted loss. Not run.", text)
        self.assertIn("Budget (not recorded): 7 epochs of resnet20", text)
        self.assertIn(
            "The runs recorded no machine. The machine writing this file: "
            "CPU: ",
            text,
        )
        self.assertIn(f", {os.cpu_count()} cores;", text)
        self.assertNotIn("Fake CPU", text)


if __name__ == "__main__":
    tf.test.main()
