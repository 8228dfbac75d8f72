"""Tests for la_keras.runs.resume_check: which flags a resumed run may change."""

import dataclasses
import json
import os
import shutil

from absl import app

from la_keras.runs import resume_check
from la_keras.runs.resolved import DataConfig
from la_keras.runs.resolved import ResolvedConfig
from la_keras.runs.resolved import ScheduleConfig
from tests.test_case import TestCase

_SCHEDULE_FIELDS = {f.name for f in dataclasses.fields(ScheduleConfig)}


def _run(model_dir, **changes):
    """A small run in `model_dir`, with run, data or schedule `changes`."""
    config = ResolvedConfig(
        data=DataConfig(dataset="test", train_batch_size=4),
        schedule=ScheduleConfig(epochs=200, schedule=((1.0, 3.2), (0.1, 97.3))),
        model="resnet8",
        model_dir=model_dir,
        tb_log_dir=os.path.join(model_dir, "log"),
        export_dir=os.path.join(model_dir, "export"),
    )
    schedule = {
        k: changes.pop(k) for k in list(changes) if k in _SCHEDULE_FIELDS
    }
    config = dataclasses.replace(
        config, schedule=dataclasses.replace(config.schedule, **schedule)
    )
    return config.replace(**changes)


class CheckResumeTest(TestCase):
    def setUp(self):
        super().setUp()
        self.model_dir = self.get_temp_dir()
        _run(self.model_dir).write(self.model_dir)

    def _refusal(self, **changes) -> str:
        with self.assertRaises(app.UsageError) as caught:
            _run(self.model_dir, **changes).check_resume(has_checkpoint=True)
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        return message

    def test_every_class_of_change_is_refused_by_name(self):
        cases = {
            # the schedule
            "--epochs 200 -> 400": dict(epochs=400),
            "--base_learning_rate 0.1 -> 0.2": dict(base_learning_rate=0.2),
            "--momentum 0.9 -> 0.5": dict(momentum=0.5),
            "--nesterov true -> false": dict(nesterov=False),
            "--lr_decay_multipliers [[1.0, 3.2], [0.1, 97.3]] -> "
            "[[1.0, 3.2], [0.2, 97.3]]": dict(
                schedule=((1.0, 3.2), (0.2, 97.3))
            ),
            # the data selection and augmentation
            "--dataset test -> mnist_lt": dict(dataset="mnist_lt"),
            "--ratio 100.0 -> 10.0": dict(ratio=10.0),
            "--profile exp -> step": dict(profile="step"),
            "--holdout_fraction 0.0 -> 0.1": dict(holdout_fraction=0.1),
            "--seed 0 -> 7": dict(seed=7),
            "--train_batch_size 4 -> 8": dict(train_batch_size=8),
            "--crop_padding 2 -> 4": dict(crop_padding=4),
            "--shuffle_buffer unset -> 7": dict(shuffle_buffer=7),
            # the loss and its hyperparameters
            "--loss crossentropy -> focal": dict(loss="focal"),
            "--focal_gamma unset -> 1.0": dict(
                loss="focal", loss_options={"focal_gamma": 1.0}
            ),
            # the model
            "--model resnet8 -> resnet14": dict(model="resnet14"),
            "--weight_decay 0.0001 -> 0.0005": dict(weight_decay=5e-4),
            # the mode, the replicas, bitwise determinism
            "--mode posthoc -> baseline": dict(mode="baseline"),
            "--strategy auto -> mirrored": dict(strategy="mirrored"),
            "--num_logical_cpus 0 -> 2": dict(num_logical_cpus=2),
            "--deterministic false -> true": dict(deterministic=True),
        }
        for expected, changes in cases.items():
            with self.subTest(expected):
                self.assertIn(expected, self._refusal(**changes))

    def test_one_line_names_each_change_old_and_new(self):
        message = self._refusal(epochs=400, holdout_fraction=0.1)
        self.assertEqual(
            message,
            f"--model_dir={self.model_dir} holds a run with other flags: "
            "--holdout_fraction 0.0 -> 0.1, --epochs 200 -> 400. Rerun with "
            "the old values or use a new --model_dir.",
        )

    def test_result_neutral_changes_are_accepted(self):
        elsewhere = os.path.join(self.get_temp_dir(), "elsewhere")
        neutral = dict(
            steps_per_loop=5,
            checkpoint_every_steps=3,
            keep_checkpoints=1,
            eval_every_epochs=10,
            test_batch_size=7,
            tb_log_dir=os.path.join(elsewhere, "log"),
            export_dir=os.path.join(elsewhere, "export"),
            data_dir=elsewhere,
            data_home=elsewhere,
            jit_compile=True,
            jax_loop="scan",
            tpu="grpc://other:8470",
            tau_grid=(0.0, 1.0),
            tau=2.0,  # post-hoc only: not in the cross-entropy loss
        )
        _run(self.model_dir, **neutral).check_resume(has_checkpoint=True)
        self.assertContainsSubset(
            {"lock_timeout", "extend"}, resume_check.RESULT_NEUTRAL
        )

    def test_moved_model_dir_resumes(self):
        moved = os.path.join(self.get_temp_dir(), "moved")
        shutil.copytree(self.model_dir, moved)
        _run(moved).check_resume(has_checkpoint=True)
        self.assertIn("--epochs 200 -> 300", self._refusal(epochs=300))

    def test_tau_is_compared_when_the_loss_uses_it(self):
        _run(self.model_dir, loss="logit_adjusted").write(self.model_dir)
        message = self._refusal(loss="logit_adjusted", tau=2.0)
        self.assertIn("--tau 1.0 -> 2.0", message)

    def test_a_field_not_listed_as_neutral_is_compared(self):
        changed = resume_check.changed_fields(
            {"a_later_flag": 1, "steps_per_loop": 1},
            {"a_later_flag": 2, "steps_per_loop": 2},
            loss_uses_tau=False,
        )
        self.assertEqual(changed, {"a_later_flag": (1, 2)})

    def test_flags_json_without_a_later_field_reads_as_its_default(self):
        path = os.path.join(self.model_dir, "flags.json")
        with open(path) as f:
            flat = json.load(f)
        for key in ("crop_padding", "jax_loop", "focal_gamma"):
            del flat[key]
        with open(path, "w") as f:
            json.dump(flat, f)
        _run(self.model_dir).check_resume(has_checkpoint=True)
        self.assertIn("--crop_padding 2 -> 4", self._refusal(crop_padding=4))

    def test_no_checkpoint_or_no_flags_json_is_a_new_run(self):
        _run(self.model_dir, epochs=400).check_resume(has_checkpoint=False)
        os.remove(os.path.join(self.model_dir, "flags.json"))
        _run(self.model_dir, epochs=400).check_resume(has_checkpoint=True)


class ExtendTest(TestCase):
    def setUp(self):
        super().setUp()
        self.model_dir = self.get_temp_dir()
        _run(self.model_dir).write(self.model_dir)

    def _check(self, **changes):
        _run(self.model_dir, **changes).check_resume(has_checkpoint=True)

    def test_more_epochs_on_the_same_schedule(self):
        with self.assertRaisesRegex(
            app.UsageError, r"--epochs 200 -> 300\. .* add --extend\.$"
        ):
            self._check(epochs=300)
        self._check(epochs=300, extend=True)

    def test_schedule_steps_after_the_old_end(self):
        later = ((1.0, 3.2), (0.1, 97.3), (0.01, 200.0))
        self._check(epochs=300, schedule=later, extend=True)

    def test_schedule_changed_before_the_old_end_is_refused(self):
        # A default schedule rescaled to --epochs moves every step.
        rescaled = ((1.0, 4.8), (0.1, 145.95))
        with self.assertRaisesRegex(
            app.UsageError,
            r"--epochs 200 -> 300, --warmup_epochs/.* add --extend and give "
            r"that schedule: --warmup_epochs=3.2 --lr_decay_epochs=97.3 "
            r"--lr_decay_multipliers=0.1\.$",
        ):
            self._check(epochs=300, schedule=rescaled, extend=True)
        early = ((1.0, 3.2), (0.1, 97.3), (0.01, 150.0))
        with self.assertRaisesRegex(app.UsageError, "--warmup_epochs/"):
            self._check(epochs=300, schedule=early, extend=True)

    def test_fewer_epochs_or_other_flags_are_still_refused(self):
        with self.assertRaisesRegex(app.UsageError, "--epochs 200 -> 100"):
            self._check(epochs=100, extend=True)
        with self.assertRaisesRegex(app.UsageError, "--seed 0 -> 1\\. "):
            self._check(epochs=300, seed=1, extend=True)


class CosineExtendTest(TestCase):
    """A cosine run cannot grow: the refusal says why and what to run."""

    def _write(self, **changes):
        self.model_dir = os.path.join(self.get_temp_dir(), "cosine")
        os.makedirs(self.model_dir, exist_ok=True)
        _run(self.model_dir, lr_schedule="cosine", **changes).write(
            self.model_dir
        )

    def _refusal(self, **changes) -> str:
        run = _run(self.model_dir, lr_schedule="cosine", **changes)
        self.assertFalse(
            resume_check.extends(
                ResolvedConfig.read(self.model_dir).to_dict(), run.to_dict()
            )
        )
        with self.assertRaises(app.UsageError) as caught:
            run.check_resume(has_checkpoint=True)
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        return message

    def test_from_scratch_the_hint_starts_over(self):
        self._write()
        # The step schedule (rescaled by --epochs) is not the cosine's.
        rescaled = ((1.0, 4.8), (0.1, 145.95))
        for extend in (False, True):
            message = self._refusal(
                epochs=300, schedule=rescaled, extend=extend
            )
            self.assertRegex(
                message,
                r"other flags: --epochs 200 -> 300\. .* --extend cannot grow "
                r"a --lr_schedule=cosine run: its learning rate reached 0 at "
                r"epoch 200, .* start over: "
                rf"--model_dir={self.model_dir}_extended "
                rf"--tb_log_dir={self.model_dir}_extended/log --epochs=300\.$",
            )

    def test_a_backbone_run_is_started_from_its_weights(self):
        self._write(backbone=True)
        message = self._refusal(epochs=205, backbone=True, extend=True)
        self.assertRegex(
            message,
            r"To train it 5 more epochs, .* with a new head \(--head_init\): "
            rf"--init_from={self.model_dir} "
            rf"--model_dir={self.model_dir}_extended "
            rf"--tb_log_dir={self.model_dir}_extended/log --epochs=5\.$",
        )

    def test_unused_step_schedule_is_not_compared(self):
        self._write()
        run = _run(self.model_dir, lr_schedule="cosine", schedule=((1.0, 1.0),))
        run.check_resume(has_checkpoint=True)
