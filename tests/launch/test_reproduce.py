"""Tests for launch.reproduce: flags, the table, and end to end on the smoke
budget. (The loss-flag, DRW and weight-norm evaluation tests that lived here
moved to test_config.py with the code they test.)"""

import json
import os
import re

import pytest
import tensorflow as tf
from absl import app
from absl import flags
from absl.testing import flagsaver

from launch import reproduce
from tests.launch import helpers
from tests.test_case import TestCase

FLAGS = flags.FLAGS


def setUpModule():
    helpers.define_all_flags()
    reproduce.define_flags()


class ReproduceFlagsTest(TestCase):
    def test_budget_flagfiles(self):
        for budget in ("smoke", "short"):
            (flag,) = reproduce.budget_flags(budget, "cifar10_lt")
            path = flag.split("=", 1)[1]
            self.assertTrue(os.path.exists(path), path)
        (flag,) = reproduce.budget_flags("full", "cifar100_lt")
        self.assertTrue(flag.endswith("launch/configs/cifar100_lt.cfg"))
        with open(flag.split("=", 1)[1]) as f:
            self.assertIn("--epochs=1419", f.read())
        with self.assertRaisesRegex(app.UsageError, "no official schedule"):
            reproduce.budget_flags("full", "test")

    def test_train_args(self):
        with flagsaver.flagsaver(
            budget="short", train_flag=["--epochs=3"], ldam_scale=1.0
        ):
            args = reproduce.train_args(FLAGS, "cifar10_lt", 2, "ldam", "/r")
        self.assertIn("--loss=ldam", args)
        self.assertIn("--ldam_s=1.0", args)
        self.assertIn("--seed=2", args)
        self.assertIn("--holdout_fraction=0", args)
        self.assertEqual(args[-1], "--epochs=3")  # overrides come last
        # By default the LDAM run keeps the loss's s=30 (cosine classifier).
        with flagsaver.flagsaver(budget="short"):
            args = reproduce.train_args(FLAGS, "cifar10_lt", 2, "ldam", "/r")
        self.assertFalse([a for a in args if a.startswith("--ldam_s")])

    def test_unknown_method(self):
        with flagsaver.flagsaver(methods=["erm", "mixup"]):
            with self.assertRaisesRegex(app.UsageError, "mixup"):
                reproduce.run(FLAGS)


class TableTest(TestCase):
    """Mean ± std over seeds, shots and the official column, by hand."""

    def _report(self, balanced, tau=None):
        report = dict(
            top1=0.5,
            balanced_accuracy=balanced,
            many=0.9,
            medium=0.5,
            few=None,
            per_class_accuracy=[balanced] * 10,
        )
        if tau is not None:
            report["tau"] = tau
        return report

    def test_two_seeds(self):
        per_seed = {}
        for seed, (raw, tuned) in enumerate(((0.70, 0.76), (0.72, 0.80))):
            metrics = {
                "test": {
                    "raw": self._report(raw),
                    "adjusted": self._report(raw + 0.01, 1.0),
                    "adjusted_tuned": self._report(tuned, 1.5 + seed),
                }
            }
            # The τ = 1 rows read the baseline run, the τ* rows the holdout
            # run (spec.ROWS); both carry the same reports here.
            runs = {"baseline": metrics, "holdout": metrics}
            per_seed[seed] = {"runs": runs, "wn": None}
        with flagsaver.flagsaver(methods=["erm", "la_posthoc", "la_loss"]):
            lines = reproduce.table(FLAGS, "cifar10_lt", per_seed)
        rows = {line.split(" | ")[0][2:]: line for line in lines[2:10]}
        # ERM: errors 30, 28 -> mean 29, sample std sqrt(2) = 1.41.
        self.assertIn("| 29.00 ± 1.41 |", rows["ERM"])
        self.assertIn("| 90.00 | 50.00 | n/a |", rows["ERM"])
        self.assertTrue(rows["ERM"].endswith("| 28.64 |"))  # 1 - 0.7136
        tuned = rows["Logit adjustment post-hoc (τ = τ*)"]
        self.assertIn("| 22.00 ± 2.83 | 1.5, 2.5 |", tuned)
        self.assertIn("| 22.68 |", rows["Logit adjustment post-hoc (τ = 1)"])
        self.assertIn("not run", rows["Logit-adjusted loss"])
        self.assertNotIn("Weight normalisation (τ = 1)", rows)


def _rows(text):
    return re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|", text, re.M)


def _run(out, *extra, timeout=600):
    args = [
        "--datasets=test",
        "--seeds=0",
        "--budget=smoke",
        f"--output_dir={out}",
        *extra,
    ]
    result = helpers.run_module("launch.reproduce", args, timeout=timeout)
    with open(os.path.join(out, "RESULTS.md")) as f:
        return result, f.read()


class ReproduceEndToEndTest(TestCase):
    """`--budget=smoke` on the synthetic `test` set."""

    # Slow (45 s: two trainings and their weight-norm evaluations). The
    # default suite runs launch.reproduce end to end on TensorFlow
    # (test_failed_run_is_isolated) and on JAX, where it trains a row,
    # writes RESULTS.md and reruns without training
    # (test_without_tensorflow.py); the rows of each method and their
    # data: test_reproduce_report.py, test_reproduce_spec.py.
    @pytest.mark.slow
    def test_baseline_rows_and_rerun(self):
        # One training (ERM, weight normalisation and post-hoc rows) and the
        # weight-normalisation evaluation; then a rerun that trains nothing.
        out = os.path.join(self.get_temp_dir(), "reproduce")
        methods = "--methods=erm,weight_norm,la_posthoc"
        result, text = _run(out, methods)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        rows = dict(_rows(text))
        self.assertEqual(
            [label for label in rows if label != "Method"],
            [
                "ERM",
                "Weight normalisation (τ = 1)",
                "Weight normalisation (τ = τ*)",
                "Logit adjustment post-hoc (τ = 1)",
                "Logit adjustment post-hoc (τ = τ*)",
            ],
        )
        self.assertIn(
            "| Method | Balanced error (%) | τ | Many (%) | Medium (%) "
            "| Few (%) | Official release, balanced error (%) |",
            text,
        )
        for label, error in rows.items():
            if label != "Method":
                self.assertRegex(error, r"^\d+\.\d\d ± n/a \(1 seed\)$")
        self.assertIn("![per-class test accuracy, test]", text)
        self.assertTrue(
            os.path.exists(os.path.join(out, "results", "test_per_class.png"))
        )
        self.assertIn("Budget `smoke`: 1 epochs of resnet8", text)
        self.assertIn("cores", text)
        self.assertIn("left out", text)
        outputs = [
            os.path.join(out, "test", "seed0", run, name)
            for run in ("baseline", "holdout")
            for name in ("metrics.json", "weight_norm.json")
        ]
        mtimes = [os.path.getmtime(p) for p in outputs]
        # The τ = 1 rows trained on the whole set, the τ* rows held out.
        for run, fraction in (("baseline", 0.0), ("holdout", 0.1)):
            with open(
                os.path.join(out, "test", "seed0", run, "flags.json")
            ) as f:
                self.assertEqual(json.load(f)["holdout_fraction"], fraction)

        rerun, rerun_text = _run(out, methods, timeout=300)
        self.assertEqual(rerun.returncode, 0, rerun.stderr[-3000:])
        self.assertEqual([os.path.getmtime(p) for p in outputs], mtimes)
        self.assertIn("Skipping baseline", rerun.stderr)
        self.assertIn("Skipping holdout", rerun.stderr)
        self.assertNotIn("python -m launch.train --", rerun.stderr)
        self.assertNotIn("python -m launch.evaluate --", rerun.stderr)
        self.assertEqual(dict(_rows(rerun_text)), rows)

    @pytest.mark.slow
    def test_every_row(self):
        # The five trainings of the table (minutes on a 2-core CPU).
        out = os.path.join(self.get_temp_dir(), "reproduce_all")
        result, text = _run(out)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        rows = dict(_rows(text))
        self.assertEqual(
            [label for label in rows if label != "Method"],
            [label for _, label, *_ in reproduce.ROWS],
        )
        for label, error in rows.items():
            if label != "Method":
                self.assertRegex(error, r"^\d+\.\d\d ± n/a \(1 seed\)$")
        for run in reproduce.RUNS:
            self.assertTrue(
                os.path.exists(
                    os.path.join(out, "test", "seed0", run, "metrics.json")
                )
            )
        self.assertIn("--loss=ldam --holdout_fraction=0", result.stderr)
        with open(
            os.path.join(out, "test", "seed0", "ldam", "flags.json")
        ) as f:
            ldam_flags = json.load(f)
        # Cao et al.'s s=30 on the cosine classifier, as their code trains.
        self.assertEqual(ldam_flags["classifier"], "normed")
        self.assertIsNone(ldam_flags["ldam_s"])

    @pytest.mark.slow
    def test_failed_run_is_isolated(self):
        out = os.path.join(self.get_temp_dir(), "reproduce_fail")
        # --train_flag=--epochs=0 makes launch.train refuse: the run fails,
        # reproduce goes on and reports it.
        result, text = _run(
            out, "--methods=erm,la_loss", "--train_flag=--epochs=0", timeout=300
        )
        self.assertEqual(result.returncode, 1, result.stderr[-3000:])
        self.assertEqual(result.stderr.count("failed (exit"), 2)
        rows = dict(_rows(text))
        self.assertEqual(rows["ERM"], "not run (failed)")
        self.assertEqual(rows["Logit-adjusted loss"], "not run (failed)")


if __name__ == "__main__":
    tf.test.main()
