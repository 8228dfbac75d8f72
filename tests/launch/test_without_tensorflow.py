"""The JAX backend where TensorFlow is not installed.

Each run here is a subprocess whose `sitecustomize` puts `None` in
`sys.modules` for `tensorflow` and `tensorflow_datasets`: any import of
them fails there as on a machine without them, and
`importlib.util.find_spec` reports them absent. The data is a
`prepared:` file written beforehand (with TensorFlow) by `launch.prepare`.
"""

import json
import os
import re
import shutil
import tempfile
import textwrap

import numpy as np
import pytest

from tests.launch import helpers
from tests.test_case import TestCase

pytest.importorskip("jax")

_BLOCK = """\
import sys

sys.modules["tensorflow"] = None
sys.modules["tensorflow_datasets"] = None
"""


def _make_blocker(directory):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "sitecustomize.py"), "w") as f:
        f.write(_BLOCK)
    return {
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "PYTHONPATH": os.pathsep.join([directory, helpers.REPO]),
    }


def _reproduce(env, data, out, methods):
    """`launch.reproduce --budget=smoke` on a prepared file, TF blocked."""
    return helpers.run_module(
        "launch.reproduce",
        [
            f"--datasets=prepared:{data}",
            f"--methods={methods}",
            "--budget=smoke",
            "--seeds=0",
            f"--output_dir={out}",
        ],
        timeout=600,
        extra_env=env,
    )


class BlockedTestCase(TestCase):
    """A folder of the class's own with the blocker, and `cls.data`: the
    `test` dataset prepared (with TensorFlow) with `PREPARE_FLAGS`."""

    DATA = "test.prepared"
    PREPARE_FLAGS = ()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="no_tf_")
        cls.addClassCleanup(shutil.rmtree, cls.root, ignore_errors=True)
        cls.env = _make_blocker(os.path.join(cls.root, "blocker"))
        cls.data = os.path.join(cls.root, cls.DATA)
        made = helpers.run_module(
            "launch.prepare",
            ["--dataset=test", *cls.PREPARE_FLAGS, f"--output={cls.data}"],
        )
        assert made.returncode == 0, made.stderr[-3000:]


class WithoutTensorFlowTest(BlockedTestCase):
    PREPARE_FLAGS = ("--holdout_fraction=0.1",)

    def _run(self, module, *args):
        return helpers.run_module(module, list(args), extra_env=self.env)

    def test_tensorflow_is_really_blocked(self):
        result = helpers.run_python(
            ["-c", "import tensorflow"], extra_env=self.env
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("ModuleNotFoundError", result.stderr)

    def test_library_imports_and_computes(self):
        code = textwrap.dedent(
            """
            import numpy as np
            import la_keras
            from la_keras import training
            loss = la_keras.LogitAdjustedLoss([0.7, 0.2, 0.1])
            value = loss(np.array([0, 2]), np.zeros((2, 3), "float32"))
            print(float(value), training.TrainingLoop.__name__)
            """
        )
        result = helpers.run_python(["-c", code], extra_env=self.env)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        value, name = result.stdout.split()
        # Cross-entropy of zero logits plus log priors, numpy reference.
        log_priors = np.log(np.array([0.7, 0.2, 0.1]) + 1e-12)
        expected = np.mean(
            [
                -(log_priors[y] - np.log(np.exp(log_priors).sum()))
                for y in (0, 2)
            ]
        )
        self.assertAllClose(float(value), expected, rtol=1e-5)
        self.assertEqual(name, "TrainingLoop")

    @pytest.mark.slow
    def test_quickstart_then_evaluate(self):
        out_dir = os.path.join(self.root, "quickstart")
        result = self._run(
            "launch.quickstart",
            f"--dataset=prepared:{self.data}",
            "--train_batch_size=4",
            "--test_batch_size=10",
            "--epochs=2",
            f"--quickstart_dir={out_dir}",
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("test accuracy", result.stdout)
        self.assertIn("loss (logit-adjusted loss)", result.stdout)
        for mode in ("loss", "baseline"):
            model_dir = os.path.join(out_dir, mode)
            self.assertIn(
                f"Keras model: {model_dir}/model.keras", result.stdout
            )
            with open(os.path.join(model_dir, "metrics.json")) as f:
                metrics = json.load(f)
            self.assertEqual(metrics["backend"], "jax")
            self.assertEqual(metrics["epoch"], 2)
            self.assertTrue(os.path.exists(metrics["keras_model"]))
            for kind in ("train", "test"):
                events = os.listdir(os.path.join(model_dir, "log", kind))
                self.assertLen(events, 1)
                self.assertStartsWith(events[0], "events.out.tfevents.")

        # launch.evaluate on JAX reads the run's .npz checkpoints, and the
        # TensorFlow backend reads the same checkpoints to the same logits.
        baseline = os.path.join(out_dir, "baseline")
        evaluated = self._run("launch.evaluate", f"--model_dir={baseline}")
        self.assertEqual(evaluated.returncode, 0, evaluated.stderr[-3000:])
        # Its report: what was evaluated, the table, where the JSON went.
        report = evaluated.stdout.strip().splitlines()
        self.assertEqual(
            report[0],
            f"prepared:{self.data}: {baseline}/checkpoints/ckpt-18.npz",
        )
        self.assertStartsWith(report[1], "test accuracy")
        self.assertStartsWith(report[-2], "post-hoc, tau* (holdout) tau=")
        self.assertEqual(
            report[-1],
            f"Report (with the tau sweeps): {baseline}/eval_metrics.json",
        )
        on_tf = helpers.run_module(
            "launch.evaluate",
            [f"--model_dir={baseline}", f"--output={baseline}/tf.json"],
            extra_env={"KERAS_BACKEND": "tensorflow"},
        )
        self.assertEqual(on_tf.returncode, 0, on_tf.stderr[-3000:])
        with open(os.path.join(baseline, "eval_metrics.json")) as f:
            jax_report = json.load(f)
        with open(os.path.join(baseline, "tf.json")) as f:
            tf_report = json.load(f)
        self.assertIsNotNone(jax_report["holdout"]["tau_star"])
        for key in ("raw", "adjusted", "adjusted_tuned"):
            self.assertAllClose(
                jax_report["test"][key]["per_class_accuracy"],
                tf_report["test"][key]["per_class_accuracy"],
            )
        self.assertEqual(
            jax_report["holdout"]["tau_sweep"],
            tf_report["holdout"]["tau_sweep"],
        )
        self.assertEqual(
            jax_report["test_tau_sweep"], tf_report["test_tau_sweep"]
        )

    # Slow (17 s). The default suite reads folders without TensorFlow
    # (tests/datasets/test_folder_pipelines.py), trains on folders with
    # TensorFlow and prepares them (test_folder_runs.py), and trains on JAX
    # (test_train_jax.py SharedJaxRunTest, test_quickstart_then_evaluate).
    @pytest.mark.slow
    def test_folder_dataset_trains_and_prepares(self):
        from tests.launch.test_folder_runs import CLASSES
        from tests.launch.test_folder_runs import folder_flags
        from tests.launch.test_folder_runs import make_gray_folder

        data = make_gray_folder(os.path.join(self.root, "gray"))
        model_dir = os.path.join(self.root, "folder_run")
        result = self._run(
            "launch.train",
            *helpers.flag_args(folder_flags(data, model_dir)),
        )
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        with open(os.path.join(model_dir, "metrics.json")) as f:
            metrics = json.load(f)
        self.assertEqual(metrics["backend"], "jax")
        self.assertEqual(metrics["class_names"], list(CLASSES))
        self.assertIn("balanced_accuracy", metrics["test"]["raw"])
        output = os.path.join(self.root, "gray.prepared")
        made = self._run(
            "launch.prepare", f"--dataset=folder:{data}", f"--output={output}"
        )
        self.assertEqual(made.returncode, 0, made.stderr[-3000:])
        self.assertIn(f"Wrote {output}", made.stdout)
        # No index left in the default --model_dir (in the working
        # directory): launch.prepare has no model_dir.
        default_index = "logit_adjustment/model/folder_index.json"
        self.assertFalse(
            os.path.exists(os.path.join(helpers.REPO, default_index))
        )

    @pytest.mark.slow
    def test_reproduce_logit_adjusted_row(self):
        from la_keras.datasets import prepared

        # The file holds a holdout of its own: fine for the rows that do not
        # tune τ.
        out = os.path.join(self.root, "reproduce_la_loss")
        result = _reproduce(self.env, self.data, out, "la_loss")
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        with open(os.path.join(out, "RESULTS.md")) as f:
            text = f.read()
        self.assertRegex(
            text, r"\| Logit-adjusted loss \| \d+\.\d\d ± n/a \(1 seed\) \|"
        )
        self.assertIn(f"## test (prepared:{self.data})", text)
        self.assertIn(f"checksum {prepared.checksum(self.data)}", text)
        self.assertIn("accelerators visible to JAX: none", text)
        self.assertIn("jax ", text)
        self.assertNotIn("tensorflow ", text)
        self.assertIn(
            "Plan: 1 training(s), 1 to run. 1 epochs each", result.stderr
        )
        # The same command again trains nothing and reports the same row.
        rerun = _reproduce(self.env, self.data, out, "la_loss")
        self.assertEqual(rerun.returncode, 0, rerun.stderr[-3000:])
        self.assertIn("1 training(s), 0 to run", rerun.stderr)
        self.assertNotIn("python -m launch.train --", rerun.stderr)
        with open(os.path.join(out, "RESULTS.md")) as f:
            rows = re.compile(r"^\| Logit-adjusted loss \|.*$", re.M)
            self.assertEqual(rows.findall(f.read()), rows.findall(text))

    def test_tfds_dataset_is_refused_in_one_line(self):
        result = self._run(
            "launch.train",
            "--dataset=cifar10_lt",
            f"--model_dir={self.root}/refused",
        )
        self.assertEqual(result.returncode, 1)
        last = result.stderr.strip().splitlines()[-1]
        self.assertStartsWith(
            last,
            "launch.train: error: --dataset=cifar10_lt is read with "
            "TensorFlow and TFDS, which cannot be imported here",
        )
        self.assertIn("--dataset=prepared:PATH", last)

    def test_imagenet_recipe_data_is_refused_in_one_line(self):
        from la_keras.datasets import prepared
        from tests.datasets import fakes

        images = np.zeros((4, 8, 8, 3), np.uint8)
        labels = np.array([0, 0, 0, 1])
        info = fakes.dataset_info(
            [3, 1], name="tiny", image_shape=(8, 8, 3),
            num_examples={"train": 4, "test": 4}, preprocessing="imagenet",
        )  # fmt: skip
        path = prepared.write(
            os.path.join(self.root, "imagenet_like.prepared"),
            {"train": (images, labels), "test": (images, labels)},
            info,
            {"dataset": "tiny"},
        )
        result = self._run(
            "launch.train",
            f"--dataset=prepared:{path}",
            f"--model_dir={self.root}/imagenet_like",
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.strip().splitlines()[-1],
            f"launch.train: error: --dataset=prepared:{path}: the JAX backend "
            "trains with the CIFAR recipe on data held in memory; the "
            "ImageNet recipe (random resized crops) needs the TensorFlow "
            "backend.",
        )


class ReproduceWithoutTensorFlowTest(BlockedTestCase):
    """`launch.reproduce` on JAX from a prepared file, TensorFlow blocked.

    The file is prepared without a holdout: reproduce sets the holdout of
    the τ* rows aside itself."""

    DATA = os.path.join("data", "test.prepared")

    @pytest.mark.slow
    def test_three_rows_then_moved_without_retraining(self):
        out = os.path.join(self.root, "three")
        methods = "erm,la_posthoc,la_loss"
        result = _reproduce(self.env, self.data, out, methods)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        with open(os.path.join(out, "RESULTS.md")) as f:
            text = f.read()
        for label in (
            "ERM",
            "Logit adjustment post-hoc \\(τ = 1\\)",
            "Logit adjustment post-hoc \\(τ = τ\\*\\)",
            "Logit-adjusted loss",
        ):
            self.assertRegex(text, rf"\| {label} \| \d+\.\d\d ± n/a")
        self.assertIn("held out to choose τ*", text)

        # The output and the file move (another machine, other paths).
        moved = os.path.join(self.root, "elsewhere")
        os.makedirs(moved)
        new_out = shutil.move(out, os.path.join(moved, "three"))
        new_data = shutil.move(self.data, os.path.join(moved, "file.lt"))
        try:
            rerun = _reproduce(self.env, new_data, new_out, methods)
        finally:
            shutil.move(new_data, self.data)
        self.assertEqual(rerun.returncode, 0, rerun.stderr[-3000:])
        self.assertIn("3 training(s), 0 to run", rerun.stderr)
        self.assertNotIn("python -m launch.train --", rerun.stderr)
        with open(os.path.join(new_out, "RESULTS.md")) as f:
            new_text = f.read()
        rows = re.findall(r"^\| [^|]+ \| [^|]+ \|", text, re.M)
        self.assertEqual(
            re.findall(r"^\| [^|]+ \| [^|]+ \|", new_text, re.M), rows
        )
