"""launch.train / export from a pretrained backbone (TensorFlow backend).

MobileNet v1 alpha 0.25 at 32x32 on the synthetic `test` set, one epoch:
with `../shared/pretrained`'s real ImageNet weights when present, else a
randomly initialised backbone saved as a Keras weights file (the checks are
about which weights change and what is served, not accuracy). The JAX step
of each mode is compared with TensorFlow's in
`tests/training/test_finetune_step.py`.
"""

import hashlib
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import app
from absl import flags
from absl.testing import flagsaver

from la_keras.models import finetune
from la_keras.models import registry
from la_keras.runs import run_state
from la_keras.runs.resolved import ResolvedConfig
from tests import serving_session
from tests.launch import helpers
from tests.launch import shared_runs
from tests.test_case import TestCase

FLAGS = flags.FLAGS
SHARED_WEIGHTS = os.path.join(
    os.path.dirname(helpers.REPO),
    "shared",
    "pretrained",
    "mobilenet_2_5_224_tf_no_top.h5",
)


def pretrained_file(directory):
    """The shared ImageNet file, or a random MobileNet 0.25 saved in
    `directory` (Keras 3 weights format) where it is absent."""
    if os.path.exists(SHARED_WEIGHTS):
        return SHARED_WEIGHTS
    path = os.path.join(directory, "mobilenet_0.25.weights.h5")
    if not os.path.exists(path):
        keras.utils.set_random_seed(7)
        keras.applications.MobileNet(
            input_shape=(32, 32, 3),
            alpha=0.25,
            include_top=False,
            weights=None,
            pooling="avg",
        ).save_weights(path)
    return path


# One epoch of MobileNet 0.25 at 32x32 on the synthetic `test` set.
MOBILENET_FLAGS = dict(
    dataset="test",
    model="mobilenet",
    model_width=0.25,
    image_size="32",
    epochs=1,
    train_batch_size=8,
    test_batch_size=10,
    base_learning_rate=0.05,
)


def _flags(weights, model_dir, **overrides):
    return shared_runs.run_flags(
        model_dir, MOBILENET_FLAGS, {"pretrained": weights}, **overrides
    )


def _train(weights, model_dir, **overrides):
    return shared_runs.train_with(_flags(weights, model_dir, **overrides))


def _weights_record(model_dir):
    with open(os.path.join(model_dir, "flags.json")) as f:
        flat = json.load(f)
    return {k: flat[k] for k in ("pretrained", "pretrained_sha256")}


def _pretrained_backbone(weights):
    model = registry.build(
        "mobilenet", 10, (32, 32, 3), 0.0, pretrained=True, image_size=(32, 32),
        width=0.25,
    )  # fmt: skip
    registry.load_pretrained(model, "mobilenet", weights, 0.25)
    return finetune.backbone_of(model)


class FinetuneRunTest(TestCase):
    """One LoRA run and one linear run, shared by the checks below."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helpers.define_all_flags()
        cls.root = os.path.join(tf.compat.v1.test.get_temp_dir(), "finetune")
        os.makedirs(cls.root, exist_ok=True)
        cls.weights = pretrained_file(cls.root)
        cls.lora_dir = os.path.join(cls.root, "lora")
        cls.lora = _train(cls.weights, cls.lora_dir, finetune="lora")
        cls.linear_dir = os.path.join(cls.root, "linear")
        cls.linear = _train(cls.weights, cls.linear_dir, finetune="linear")

    def test_lora_run_reports_its_trained_parameters(self):
        with open(os.path.join(self.lora_dir, "metrics.json")) as f:
            metrics = json.load(f)
        self.assertEqual(metrics["finetune"], "lora")
        params = metrics["parameters"]
        # Rank-8 adapters on the stem and 13 pointwise convolutions, and the
        # 256 x 10 head.
        pointwise = [8, 16, 32, 32, 64, 64, 128, 128, 128, 128, 128, 128, 256]
        adapters = 3 * 3 * 3 * 8 + 8 * 8
        adapters += sum(
            8 * (a + b)
            for a, b in zip(pointwise, [*pointwise[1:], 256], strict=True)
        )
        self.assertEqual(params["trainable"], adapters + 256 * 10 + 10)
        self.assertGreater(params["total"], 200_000)
        config = ResolvedConfig.read(self.lora_dir)
        self.assertEqual(config.schedule.lr_schedule, "cosine")
        self.assertEqual(config.mode, "loss")

    def test_export_serves_raw_uint8_images_with_lora_merged(self):
        export_dir = os.path.join(self.lora_dir, "export")
        loaded = tf.saved_model.load(export_dir)
        spec = loaded.signatures["serving_default"].structured_input_signature
        self.assertEqual(spec[1]["images"].shape.as_list(), [None, 32, 32, 3])
        self.assertEqual(spec[1]["images"].dtype, tf.uint8)
        model, info, _ = run_state.restore_model(
            ResolvedConfig.read(self.lora_dir)
        )
        self.assertNotEmpty(finetune.lora_layers(model))
        adapters = [x.lora_kernel_b for x in finetune.lora_layers(model)]
        self.assertTrue(any(np.any(np.asarray(b) != 0) for b in adapters))
        images = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 3))
        images = images.astype(np.uint8)
        # The served, merged model computes what the LoRA model computes.
        serving_session.assert_served_in_session(
            self, export_dir, model, images, class_names=info.class_names
        )

    def test_linear_run_leaves_every_backbone_weight_unchanged(self):
        model, _, _ = run_state.restore_model(
            ResolvedConfig.read(self.linear_dir)
        )
        trained = finetune.backbone_of(model)
        start = _pretrained_backbone(self.weights)
        self.assertLen(trained.weights, len(start.weights))
        for after, before in zip(trained.weights, start.weights, strict=True):
            np.testing.assert_array_equal(
                np.asarray(after), np.asarray(before), err_msg=after.path
            )
        head = model.get_layer("logits").kernel
        self.assertGreater(float(np.std(np.asarray(head))), 0.0)

    def test_lora_run_keeps_the_base_kernels(self):
        model, _, _ = run_state.restore_model(
            ResolvedConfig.read(self.lora_dir)
        )
        start = _pretrained_backbone(self.weights)
        starts = {v.path: np.asarray(v) for v in start.weights}
        for layer in finetune.lora_layers(model):
            path = layer._kernel.path
            np.testing.assert_array_equal(
                np.asarray(layer._kernel), starts[path]
            )

    def test_resume_does_not_need_the_weights_file(self):
        # A finished run rerun: the weights come from its checkpoint.
        # The copy keeps the suffix that names its format.
        keras3 = self.weights.endswith(".weights.h5")
        moved = os.path.join(
            self.root, "moved.weights.h5" if keras3 else "moved.h5"
        )
        model_dir = os.path.join(self.root, "moved_run")
        shutil.copy(self.weights, moved)
        with open(moved, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest()
        # Without --tb_log_dir, the summaries go to <model_dir>/log.
        _train(moved, model_dir, finetune="linear", tb_log_dir=None)
        self.assertTrue(os.path.isdir(os.path.join(model_dir, "log", "train")))
        recorded = {"pretrained": moved, "pretrained_sha256": digest}
        self.assertEqual(_weights_record(model_dir), recorded)
        os.remove(moved)
        metrics = _train(moved, model_dir, finetune="linear")
        self.assertEqual(metrics["step"], self.linear["step"])
        # The resumed run still names the weights it started from.
        self.assertEqual(_weights_record(model_dir), recorded)

    @pytest.mark.slow
    def test_init_from_a_run_retrains_the_classifier_class_balanced(self):
        # cRT: the LoRA run's backbone (merged), frozen; a new class-mean head.
        model_dir = os.path.join(self.root, "crt")
        metrics = _train(
            None,
            model_dir,
            init_from=self.lora_dir,
            finetune="linear",
            sampler="class_balanced",
            head_init="class_mean",
        )
        self.assertEqual(metrics["finetune"], "linear")
        source, _, _ = run_state.restore_model(
            ResolvedConfig.read(self.lora_dir)
        )
        merged = finetune.backbone_of(finetune.merge_lora(source))
        model, _, _ = run_state.restore_model(ResolvedConfig.read(model_dir))
        for after, before in zip(
            finetune.backbone_of(model).weights, merged.weights, strict=True
        ):
            np.testing.assert_array_equal(np.asarray(after), np.asarray(before))
        config = ResolvedConfig.read(model_dir)
        self.assertEqual(config.data.sampler, "class_balanced")
        self.assertEqual(config.schedule.lr_schedule, "cosine")
        # Plain cross-entropy: the batches are class-balanced already.
        self.assertEqual(
            (config.mode, config.loss), ("baseline", "crossentropy")
        )
        self.assertIsNone(config.pretrained_sha256)


class SSFRunTest(TestCase):
    """`--finetune=ssf --classifier=cosine`: one run, trained and exported."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helpers.define_all_flags()
        cls.root = os.path.join(tf.compat.v1.test.get_temp_dir(), "ssf")
        os.makedirs(cls.root, exist_ok=True)
        cls.model_dir = os.path.join(cls.root, "run")
        _train(
            pretrained_file(cls.root), cls.model_dir, finetune="ssf",
            classifier="cosine", head_init="class_mean",
        )  # fmt: skip

    def test_reports_its_trained_parameters(self):
        with open(os.path.join(self.model_dir, "metrics.json")) as f:
            metrics = json.load(f)
        # A scale and a shift per batch norm channel, the bias-free head.
        channels = sum(
            int(w.shape[0])
            for w in _ssf_model(self.model_dir)[0].weights
            if w.path.endswith("ssf_scale")
        )
        self.assertEqual(metrics["finetune"], "ssf")
        self.assertEqual(
            metrics["parameters"]["trainable"], 2 * channels + 256 * 10
        )

    def test_export_serves_the_ssf_model_merged(self):
        model, info = _ssf_model(self.model_dir)
        export_dir = os.path.join(self.model_dir, "export")
        # Merged: the SavedModel holds the plain architecture's variables.
        stored = tf.train.list_variables(f"{export_dir}/variables/variables")
        sizes = [
            int(np.prod(shape))
            for name, shape in stored
            if name.startswith("graph_variables/")
        ]
        plain = finetune.merged(model)
        self.assertEqual(len(sizes), len(plain.weights))
        self.assertEqual(sum(sizes), plain.count_params())
        self.assertLess(plain.count_params(), model.count_params())
        images = np.random.default_rng(1).integers(0, 256, (6, 32, 32, 3))
        serving_session.assert_served_in_session(
            self, export_dir, model, images.astype(np.uint8),
            class_names=info.class_names,
        )  # fmt: skip


def _ssf_model(model_dir):
    from la_keras.models import ssf

    model, info, _ = run_state.restore_model(ResolvedConfig.read(model_dir))
    assert ssf.ssf_layers(model), "no SSF layer in the restored run"
    return model, info


class FinetuneFlagsTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helpers.define_all_flags()

    def _config(self, **values):
        with flagsaver.flagsaver(**values):
            return ResolvedConfig.from_flags(FLAGS)

    def test_lift_defaults_fill_the_flags_not_given(self):
        config = self._config(model="mobilenet", pretrained="w.h5")
        self.assertEqual(config.schedule.epochs, 10)
        self.assertEqual(config.schedule.base_learning_rate, 0.01)
        self.assertEqual(config.schedule.momentum, 0.9)
        self.assertFalse(config.schedule.nesterov)
        self.assertEqual(config.schedule.lr_schedule, "cosine")
        self.assertEqual(config.weight_decay, 5e-4)
        self.assertEqual(config.data.train_batch_size, 128)
        self.assertEqual((config.mode, config.loss), ("loss", "logit_adjusted"))
        self.assertIsNone(config.model_image_size)  # the registry's 224

    def test_every_flag_given_overrides_its_default(self):
        config = self._config(
            model="mobilenet", pretrained="w.h5", epochs=3, mode="posthoc",
            base_learning_rate=0.1, weight_decay=0.0, nesterov=True,
            train_batch_size=64, image_size="96",
        )  # fmt: skip
        self.assertEqual(config.schedule.epochs, 3)
        self.assertEqual(
            (config.mode, config.loss), ("posthoc", "crossentropy")
        )
        self.assertEqual(config.schedule.base_learning_rate, 0.1)
        self.assertEqual(config.weight_decay, 0.0)
        self.assertTrue(config.schedule.nesterov)
        self.assertEqual(config.data.train_batch_size, 64)
        self.assertEqual(config.model_image_size, [96, 96])
        self.assertIsNone(config.data.image_size)  # not a folder: the model

    def test_step_flags_keep_the_step_schedule(self):
        config = self._config(
            model="mobilenet", pretrained="w.h5", lr_decay_epochs=["5"],
            lr_decay_multipliers=["0.1"], epochs=8,
        )  # fmt: skip
        self.assertEqual(config.schedule.lr_schedule, "step")
        self.assertEqual(config.schedule.epochs, 8)
        # Without --epochs, LIFT's 10 (not the dataset's official count).
        config = self._config(
            model="mobilenet", pretrained="w.h5", lr_decay_epochs=["5"],
            lr_decay_multipliers=["0.1"], dataset="cifar10_lt",
        )  # fmt: skip
        self.assertEqual(config.schedule.epochs, 10)
        self.assertEqual(config.schedule.schedule[-1], (0.1, 5.0))
        with self.assertRaisesRegex(app.UsageError, "--lr_schedule=cosine"):
            self._config(
                model="mobilenet", pretrained="w.h5", lr_schedule="cosine",
                lr_decay_epochs=["5"], lr_decay_multipliers=["0.1"],
            )  # fmt: skip

    def test_a_run_from_scratch_is_unchanged(self):
        config = self._config(model="resnet8")
        self.assertFalse(config.backbone)
        self.assertEqual(config.schedule.lr_schedule, "step")
        self.assertEqual(config.schedule.base_learning_rate, 0.1)
        self.assertEqual(config.weight_decay, 1e-4)

    def test_refusals_are_one_line(self):
        cases = [
            (dict(model="resnet8", pretrained="w.h5"), "no pretrained form"),
            (dict(model="resnet8", finetune="lora"), "--finetune applies"),
            (dict(model="mobilenet", finetune="linear"), "start it from"),
            (dict(model="resnet8", model_width=0.5), "--model_width applies"),
        ]
        for values, pattern in cases:
            with self.subTest(values=values):
                with self.assertRaisesRegex(app.UsageError, pattern) as caught:
                    self._config(**values)
                self.assertNotIn("\n", str(caught.exception))
        config = self._config(model="mobilenet", model_width=0.3)
        with self.assertRaisesRegex(app.UsageError, "0.25, 0.5, 0.75, 1.0"):
            config.build_model(10, (32, 32, 3))

    def test_image_size_of_a_model_from_scratch_is_refused(self):
        config = self._config(model="resnet8", image_size="64")
        with self.assertRaisesRegex(
            app.UsageError, "input of a pretrained backbone"
        ):
            config.data.builder("train")


# Slow (22 s: three launch.train processes). The default suite refuses
# the same files when they are loaded (tests/models/test_pretrained_weights.py:
# truncated, another width, missing) and prints a refused run as one line
# (test_faults.py ModelDirTest, test_flags.py CommandLineTest).
@pytest.mark.slow
class BadWeightsTest(TestCase):
    """A weights file that does not fit: exit 1, one line naming it."""

    def _run(self, weights, *extra):
        model_dir = os.path.join(self.get_temp_dir(), "bad")
        result = helpers.run_module(
            "launch.train",
            [
                "--dataset=test", "--model=mobilenet", f"--pretrained={weights}",
                "--image_size=32", "--epochs=1", "--train_batch_size=8",
                f"--model_dir={model_dir}", f"--tb_log_dir={model_dir}/log",
                *extra,
            ],
        )  # fmt: skip
        self.assertEqual(result.returncode, 1, result.stderr[-2000:])
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        self.assertLen(lines, 1, result.stderr[-2000:])
        self.assertIn(weights, lines[0])
        return lines[0]

    def test_truncated_and_other_width_files(self):
        weights = pretrained_file(self.get_temp_dir())
        truncated = os.path.join(self.get_temp_dir(), "truncated.h5")
        with open(weights, "rb") as f:
            data = f.read()
        with open(truncated, "wb") as f:
            f.write(data[: len(data) // 2])
        self.assertIn("truncated", self._run(truncated, "--model_width=0.25"))
        line = self._run(weights, "--model_width=0.5")
        self.assertIn("does not fit --model=mobilenet --model_width=0.5", line)
        self.assertIn("conv1", line)
        self.assertIn("not found", self._run(weights + ".missing"))
