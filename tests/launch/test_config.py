"""Tests for la_keras.runs.resolved: the typed run configuration, and the loss flags
and weight-norm evaluation that read it (moved from test_reproduce)."""

import dataclasses
import json
import os

import keras
import numpy as np
from absl import app
from absl import flags
from absl.testing import flagsaver

from la_keras import datasets
from la_keras.losses.ldam import LDAMLoss
from la_keras.models import weight_norm
from la_keras.runs import run_evaluate
from la_keras.runs.resolved import DataConfig
from la_keras.runs.resolved import ResolvedConfig
from la_keras.runs.resolved import ScheduleConfig
from la_keras.training import evaluation
from launch import evaluate
from launch import train
from tests.launch import helpers
from tests.test_case import TestCase

FLAGS = flags.FLAGS


def setUpModule():
    helpers.define_all_flags()


def _config(loss="crossentropy", tau=1.0, **loss_options):
    return helpers.resolved_config(
        {"holdout_fraction": 0.1, "test_batch_size": 10},
        model="resnet8",
        loss=loss,
        tau=tau,
        loss_options=loss_options,
    )


class RunConfigTest(TestCase):
    def test_from_flags_is_typed_and_resolved(self):
        with flagsaver.flagsaver(**helpers.SMOKE_FLAGS, mode="loss"):
            config = ResolvedConfig.from_flags(FLAGS)
        self.assertIsInstance(config.data, DataConfig)
        self.assertIsInstance(config.schedule, ScheduleConfig)
        self.assertEqual(config.loss, "logit_adjusted")
        self.assertEqual(config.data.train_batch_size, 4)
        self.assertEqual(config.schedule.schedule, ((1.0, 1.0),))
        self.assertEqual(config.data.eval_splits, ("test", "holdout"))
        self.assertFalse(config.jit_compile)  # auto: off on CPU
        with self.assertRaises(dataclasses.FrozenInstanceError):
            config.model = "other"

    def test_json_round_trip(self):
        config = _config("ldam_drw", ldam_s=1.0, drw_start_epoch=3)
        model_dir = self.get_temp_dir()
        config = config.replace(model_dir=model_dir, export_dir="")
        config.write(model_dir)
        with open(os.path.join(model_dir, "flags.json")) as f:
            flat = json.load(f)
        # Flat: one key per flag, the resolved schedule and dataset_dir.
        self.assertEqual(flat["dataset"], "test")
        self.assertEqual(flat["ldam_s"], 1.0)
        self.assertIsNone(flat["cb_beta"])
        self.assertEqual(flat["schedule"], [[1.0, 1.0]])
        self.assertIn("dataset_dir", flat)
        read = ResolvedConfig.read(model_dir)
        self.assertEqual(
            read,
            config.replace(
                export_dir=read.export_dir, tb_log_dir=read.tb_log_dir
            ),
        )
        self.assertEqual(read.export_dir, os.path.join(model_dir, "export"))
        self.assertEqual(read.tb_log_dir, os.path.join(model_dir, "log"))

    def test_outputs_default_to_folders_of_the_model_dir(self):
        model_dir = os.path.join(self.get_temp_dir(), "run")
        with flagsaver.flagsaver(**helpers.SMOKE_FLAGS, model_dir=model_dir):
            config = ResolvedConfig.from_flags(FLAGS)
        self.assertEqual(config.tb_log_dir, os.path.join(model_dir, "log"))
        self.assertEqual(config.export_dir, os.path.join(model_dir, "export"))
        # Given, they win.
        with flagsaver.flagsaver(
            **helpers.SMOKE_FLAGS, model_dir=model_dir, tb_log_dir="/tb/run"
        ):
            self.assertEqual(
                ResolvedConfig.from_flags(FLAGS).tb_log_dir, "/tb/run"
            )
        # A flags.json without them (or a config built in Python).
        flat = dict(_config().replace(model_dir=model_dir).to_dict())
        flat.update(tb_log_dir="", export_dir="")
        self.assertEqual(
            ResolvedConfig.from_dict(flat).tb_log_dir,
            os.path.join(model_dir, "log"),
        )

    def test_run_recorded_with_the_old_log_default_resumes(self):
        # Before <model_dir>/log, --tb_log_dir defaulted to a folder of the
        # working directory; a rerun without the flag logs inside the
        # model_dir and still continues the run.
        model_dir = os.path.join(self.get_temp_dir(), "old_run")
        with flagsaver.flagsaver(**helpers.SMOKE_FLAGS, model_dir=model_dir):
            config = ResolvedConfig.from_flags(FLAGS)
        os.makedirs(model_dir)
        config.replace(tb_log_dir="logit_adjustment/log").write(model_dir)
        config.check_resume(has_checkpoint=True)
        # Read back (or moved), the recorded folder outside it is kept.
        self.assertEqual(
            ResolvedConfig.read(model_dir).tb_log_dir, "logit_adjustment/log"
        )

    def test_data_flags_reach_the_builder(self):
        with flagsaver.flagsaver(
            **helpers.SMOKE_FLAGS, crop_padding=4, shuffle_buffer=7
        ):
            config = ResolvedConfig.from_flags(FLAGS)
        self.assertEqual(config.data.crop_padding, 4)
        builder = config.data.builder("train")
        self.assertEqual(builder.shuffle_buffer, 7)
        self.assertEqual(builder.crop_padding, 4)
        with flagsaver.flagsaver(expected_train_examples=45):
            config = ResolvedConfig.from_flags(FLAGS)
        self.assertEqual(
            config.data._load_kwargs()["expected_examples"], {"train": 45}
        )

    def test_replace_reaches_data_fields(self):
        config = _config().replace(test_batch_size=7, tau=0.5)
        self.assertEqual(config.data.test_batch_size, 7)
        self.assertEqual(config.tau, 0.5)

    def test_read_of_a_folder_without_run(self):
        with self.assertRaisesRegex(app.UsageError, "flags.json not found"):
            ResolvedConfig.read(self.get_temp_dir())

    def test_builders_of_every_split(self):
        builders = _config().data.builders()
        self.assertEqual(set(builders), {"train", "test", "holdout"})
        self.assertTrue(builders["train"].training)
        self.assertFalse(builders["test"].training)


class LossFlagsTest(TestCase):
    def test_flags_reach_their_loss(self):
        kwargs = _config(
            "ldam_drw", ldam_s=1.0, drw_start_epoch=3
        ).loss_kwargs()
        self.assertEqual(kwargs, {"s": 1.0, "drw_start_epoch": 3})
        self.assertEqual(
            _config("logit_adjusted", tau=0.5).loss_kwargs(), {"tau": 0.5}
        )
        self.assertEqual(
            _config("equalized", eql_lambda=0.05).loss_kwargs(),
            {"lambda_": 0.05},
        )

    def test_flag_of_another_loss_is_refused(self):
        with self.assertRaisesRegex(app.UsageError, "--ldam_s applies to"):
            _config("crossentropy", ldam_s=1.0).loss_kwargs()

    def test_build_loss_uses_train_counts(self):
        _, info = datasets.load("test", "train", None, holdout_fraction=0.1)
        loss = _config("ldam", ldam_s=2.0, ldam_max_m=0.3).build_loss(info)
        self.assertIsInstance(loss, LDAMLoss)
        self.assertEqual(loss.s, 2.0)
        self.assertAllClose(loss.class_counts, info.train_counts)
        self.assertAllClose(loss.margins.max(), 0.3)


class DeferredReweightingInTrainTest(TestCase):
    """`--loss=ldam_drw`: the loop calls on_epoch_begin every epoch."""

    def test_every_epoch_and_after_resume(self):
        model_dir = os.path.join(self.get_temp_dir(), "drw")
        epochs_seen = []
        weights_seen = []
        original = LDAMLoss.on_epoch_begin

        def spy(loss, epoch):
            weights = original(loss, epoch)
            epochs_seen.append(epoch)
            weights_seen.append(np.array(weights))
            return weights

        overrides = dict(
            helpers.SMOKE_FLAGS,
            model_dir=model_dir,
            tb_log_dir=os.path.join(model_dir, "log"),
            mode="loss",
            loss="ldam_drw",
            ldam_s=1.0,
            drw_start_epoch=1,
            eval_every_epochs=1000,
        )
        LDAMLoss.on_epoch_begin = spy
        try:
            with flagsaver.flagsaver(**dict(overrides, epochs=1)):
                train.run(FLAGS)
            self.assertEqual(epochs_seen, [0])
            # Extend to a second epoch in a fresh loss: DRW must switch on.
            with flagsaver.flagsaver(**dict(overrides, epochs=2, extend=True)):
                metrics = train.run(FLAGS)
        finally:
            LDAMLoss.on_epoch_begin = original
        self.assertEqual(epochs_seen, [0, 1])
        self.assertEqual(metrics["epoch"], 2)
        self.assertAllClose(weights_seen[0], np.ones(10))
        # Class-balanced weights: rarer classes weigh more.
        self.assertGreater(weights_seen[1][-1], weights_seen[1][0])


class WeightNormReportTest(TestCase):
    def test_matches_tau_normalize(self):
        config = _config()
        _, info = datasets.load("test", "train", None, holdout_fraction=0.1)
        keras.utils.set_random_seed(1)
        model = config.build_model(10, info.image_shape)
        # Spread the class norms so that tau changes the predictions.
        dense = model.layers[-1]
        dense.kernel.assign(
            dense.kernel.numpy() * np.linspace(0.2, 5.0, 10)[None, :]
        )
        dense.bias.assign(np.linspace(-1.0, 1.0, 10))
        report = run_evaluate.weight_norm_report(
            config, model, info, [0.0, 1.0, 2.0]
        )
        test, _ = datasets.load(
            "test", "test", None, holdout_fraction=0.1, seed=0
        )
        for key in ("tau_1", "tuned"):
            tau = report[key]["tau"]
            clone = weight_norm.tau_normalize(model, tau)
            logits, labels = [], []
            for images, batch_labels in test.batch(10):
                logits.append(np.asarray(clone(images, training=False)))
                labels.append(batch_labels.numpy())
            expected = evaluation.classification_report(
                np.concatenate(logits),
                np.concatenate(labels),
                info.train_counts,
            )
            self.assertAllClose(
                report[key]["per_class_accuracy"],
                expected["per_class_accuracy"],
            )
            self.assertAllClose(
                report[key]["balanced_accuracy"],
                expected["balanced_accuracy"],
            )
        self.assertEqual([r["tau"] for r in report["holdout_sweep"]], [0, 1, 2])
        self.assertEqual(
            report["tau_star"],
            evaluation.select_tau(report["holdout_sweep"]),
        )

    def test_saved_model_is_refused(self):
        with flagsaver.flagsaver(saved_model="/x", weight_norm_taus=["1"]):
            with self.assertRaisesRegex(app.UsageError, "--model_dir"):
                evaluate.run(FLAGS)

    def test_negative_tau_is_refused(self):
        with flagsaver.flagsaver(model_dir="/x", weight_norm_taus=["-1"]):
            with self.assertRaisesRegex(app.UsageError, ">= 0"):
                evaluate.run(FLAGS)
