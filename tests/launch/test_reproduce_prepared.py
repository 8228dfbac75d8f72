"""launch.reproduce on prepared files: the source dataset's schedule and
official figures, the holdout rule, the plan and the progress lines."""

import io
import os
from unittest import mock

import numpy as np
from absl import app
from absl import flags
from absl.testing import flagsaver

from la_keras.datasets import prepared
from la_keras.datasets.info import DatasetInfo
from launch import reproduce
from launch.reproduce import facts
from launch.reproduce import plan
from launch.reproduce import spec
from tests.launch import helpers
from tests.test_case import TestCase

FLAGS = flags.FLAGS


def setUpModule():
    helpers.define_all_flags()
    reproduce.define_flags()


def write_file(path, source="cifar10_lt", holdout=False, counts=(8, 4, 2)):
    """A small prepared file made "from" `source`; returns `prepared:path`."""
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(len(counts)), counts)
    splits = {
        "train": (rng.integers(0, 256, (len(labels), 4, 4, 3)), labels),
        "test": (rng.integers(0, 256, (6, 4, 4, 3)), np.arange(6) % 3),
    }
    if holdout:
        splits["holdout"] = splits["test"]
    info = DatasetInfo(
        name="small",
        num_classes=len(counts),
        class_names=[str(c) for c in range(len(counts))],
        train_counts=np.asarray(counts),
        priors=np.asarray(counts) / sum(counts),
        image_shape=(4, 4, 3),
        num_examples={s: len(y) for s, (_, y) in splits.items()},
        preprocessing="cifar",
    )
    source = {"dataset": source, "ratio": 100.0, "profile": "exp", "seed": 0}
    prepared.write(path, splits, info, source)
    return prepared.PREFIX + path


class PreparedSpecTest(TestCase):
    def setUp(self):
        super().setUp()
        self.dataset = write_file(os.path.join(self.get_temp_dir(), "a.lt"))

    def test_source_gives_the_schedule_and_official_figures(self):
        self.assertEqual(spec.source_dataset(self.dataset), "cifar10_lt")
        self.assertEqual(spec.source_dataset("cifar100_lt"), "cifar100_lt")
        self.assertEqual(
            spec.budget_flagfile("full", self.dataset),
            spec.budget_flagfile("full", "cifar10_lt"),
        )
        other = write_file(
            os.path.join(self.get_temp_dir(), "b.lt"), source="mnist_lt"
        )
        with self.assertRaisesRegex(app.UsageError, r"made from mnist_lt"):
            spec.budget_flagfile("full", other)
        metrics = {
            "test": {
                key: {
                    "balanced_accuracy": 0.5,
                    "many": 0.5,
                    "medium": None,
                    "few": None,
                }
                for key in ("raw", "adjusted")
            }
        }
        per_seed = {0: {"runs": {"baseline": metrics}, "wn": {}}}
        with flagsaver.flagsaver(methods=["erm"]):
            lines = reproduce.table(FLAGS, self.dataset, per_seed)
            other_lines = reproduce.table(FLAGS, other, per_seed)
        erm = lines[2]
        self.assertTrue(erm.startswith("| ERM | 50.00"), erm)
        # 1 - 0.7136, the release's ERM figure on CIFAR-10-LT.
        self.assertTrue(erm.endswith("| 28.64 |"), erm)
        self.assertTrue(other_lines[2].endswith("| – |"), other_lines[2])

    def test_report_names_the_file_and_its_checksum(self):
        path = self.dataset[len(prepared.PREFIX) :]
        text = facts.prepared_text(self.dataset)
        self.assertIn(prepared.checksum(path), text)
        self.assertIn("`a.lt`", text)
        self.assertIn("from cifar10_lt, exp profile, imbalance ratio 100", text)
        self.assertIn("3 classes, 14 training images", text)
        self.assertIsNone(facts.prepared_text("cifar10_lt"))

    def test_checksum_follows_the_contents_not_the_path(self):
        path = self.dataset[len(prepared.PREFIX) :]
        moved = os.path.join(self.get_temp_dir(), "moved.lt")
        os.rename(path, moved)
        other = write_file(path, counts=(8, 4, 3))
        checksum = prepared.checksum(moved)
        self.assertLen(checksum, 64)
        self.assertNotEqual(
            checksum, prepared.checksum(other[len(prepared.PREFIX) :])
        )

    def test_a_file_with_its_own_holdout_is_refused_for_tuned_rows(self):
        own = write_file(
            os.path.join(self.get_temp_dir(), "h.lt"), holdout=True
        )
        with flagsaver.flagsaver(
            datasets=[own], methods=["erm", "la_posthoc"], train_flag=[]
        ):
            with self.assertRaisesRegex(
                app.UsageError, "Prepare it again with --holdout_fraction=0"
            ):
                spec.check(FLAGS)
        # Rows without a tuned τ do not need the holdout run.
        with flagsaver.flagsaver(
            datasets=[own], methods=["erm", "la_loss"], train_flag=[]
        ):
            spec.check(FLAGS)

    def test_train_examples_of_each_run(self):
        self.assertEqual(spec.train_examples(self.dataset, 0, 0.0), 14)
        # Holdout: round(0.1 * n), at least 1 of each class: 1 + 1 + 1.
        self.assertEqual(spec.train_examples(self.dataset, 0, 0.1), 11)
        self.assertIsNone(spec.train_examples("folder:/nowhere", 0, 0.1))
        self.assertEqual(spec.train_examples("test", 0, 0.0), 46)


class PlanTest(TestCase):
    def test_plan_text(self):
        trainings = [
            plan.Training("c10 seed 0 baseline", 1241, 12406, True),
            plan.Training("c10 seed 0 la_loss", 1241, 12406, False),
            plan.Training("c10 seed 0 holdout", 1241, 11164, False),
        ]
        text = plan.plan_text(trainings)
        self.assertStartsWith(
            text,
            "Plan: 3 training(s), 2 to run (1 finished earlier, skipped). "
            f"1241 epochs each, {1241 * (12406 + 11164):,} training images",
        )
        self.assertIn("c10 seed 0 holdout: 1241 epochs × 11,164 images", text)
        self.assertNotIn("baseline", text)
        self.assertIn("2 to run", text)
        unknown = [plan.Training("f", 3, None, False)]
        self.assertEqual(
            plan.plan_text(unknown),
            "Plan: 1 training(s), 1 to run. 3 epochs each:\n  f: 3 epochs × "
            "? images",
        )

    def test_progress_times_the_steps_after_the_first_chunk(self):
        stream = io.StringIO()
        now = [0.0]
        progress = plan.TrainingProgress(
            "c10 seed 0 la_loss",
            batch_size=128,
            images_after=2_000_000,
            stream=stream,
            line_interval=60,
            clock=lambda: now[0],
        )
        lines = [
            (0, "step 0/1000\n"),
            # The first chunk compiles: 100 steps in 50 s, not timed.
            (
                50,
                "step 100/1000 - loss: 2.3 - images/s: 256.0 - ETA: 0:07:30\n",
            ),
            # Then 100 steps every 10 s (1,280 images/s).
            (
                60,
                "step 200/1000 - loss: 2.1 - images/s: 400.0 - ETA: 0:03:00\n",
            ),
            (
                70,
                "step 300/1000 - loss: 2.0 - images/s: 480.0 - ETA: 0:02:00\n",
            ),
            (
                130,
                "step 900/1000 - loss: 1.9 - images/s: 900.0 - ETA: 0:00:10\n",
            ),
            (140, "step 1000/1000 - loss: 1.9 - images/s: 910.0\n"),
        ]
        logged = []
        # absl's verbosity is process-wide and other tests change it: the
        # lines are read from the logging call itself.
        with mock.patch.object(
            plan.logging, "info", lambda fmt, *a: logged.append(fmt % a)
        ):
            self.assertFalse(progress.feed("I1130 epoch 1/1241 step 78\n"))
            for t, line in lines:
                now[0] = t
                self.assertTrue(progress.feed(line))
        self.assertEqual(
            logged,
            [
                # At step 200: 800 steps of 0.1 s left; the trainings after
                # it, 2,000,000 images at 1,280 images/s.
                "c10 seed 0 la_loss: step 200/1000, 1280.0 images/s, about "
                "0:01:20 left; the trainings after it, about 0:26:02 at "
                "this rate",
                # 60 s later (line_interval), not at step 300.
                "c10 seed 0 la_loss: step 900/1000, 1280.0 images/s, about "
                "0:00:10 left; the trainings after it, about 0:26:02 at "
                "this rate",
            ],
        )
        self.assertEqual(stream.getvalue(), "")  # not a terminal: no bar
