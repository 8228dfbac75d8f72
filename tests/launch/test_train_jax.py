"""launch.train with KERAS_BACKEND=jax: same flags, outputs, resume, export."""

import glob
import json
import os
import socket

import numpy as np
import pytest
import tensorflow as tf

from la_keras.runs import lock
from la_keras.runs.resolved import ResolvedConfig
from tests import serving_session
from tests.launch import helpers
from tests.launch import shared_runs
from tests.numerics import assert_float32_close
from tests.test_case import TestCase

pytest.importorskip("jax")

_JAX = {"KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"}

# launch.train, with the sharding that XLA gives the train step's input
# batch (inside the compiled step, at each compilation) written to the JSON
# file named by the first argument.
_TRAIN_RECORDING_PLACEMENT = """
import json, sys
import jax
from la_keras.training import jax_trainer
from launch import cli, common_flags, train
seen = []
step_fn = jax_trainer.JaxTrainer._step_fn

def recording_step_fn(self, state, images, labels):
    def record(sharding):
        seen.append({
            "batch": list(images.shape),
            "devices": len(sharding.device_set),
            "shard": list(sharding.shard_shape(images.shape)),
        })
    jax.debug.inspect_array_sharding(images, callback=record)
    return step_fn(self, state, images, labels)

jax_trainer.JaxTrainer._step_fn = recording_step_fn
common_flags.define_flags()
path, sys.argv = sys.argv[1], ["launch.train", *sys.argv[2:]]
try:
    cli.app_run(train.main)
finally:
    with open(path, "w") as f:
        json.dump(seen, f)
"""


def _train(model_dir, **overrides):
    return helpers.run_module(
        "launch.train",
        helpers.smoke_args(model_dir, **overrides),
        extra_env=_JAX,
    )


def _extend(model_dir, epochs):
    """Trains a copy of the shared JAX run on to `epochs` (--extend)."""
    return helpers.run_module(
        "launch.train",
        [*shared_runs.jax_args(model_dir), f"--epochs={epochs}", "--extend"],
        extra_env=_JAX,
    )


class SharedJaxRunTest(TestCase):
    """The shared JAX smoke run (`shared_runs.jax_run`): its outputs, its
    export, and a resume past a damaged checkpoint (in a copy)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.model_dir, cls.metrics, _ = shared_runs.jax_run()

    def test_outputs_and_export_served_like_tf_serving(self):
        metrics = self.metrics
        # The same metrics.json as a TensorFlow run, plus the backend.
        self.assertEqual(metrics["backend"], "jax")
        self.assertEqual(metrics["step"], 18)
        self.assertEqual(metrics["epoch"], 2)
        for key in ("raw", "adjusted", "adjusted_tuned"):
            self.assertLen(metrics["test"][key]["per_class_accuracy"], 10)
        self.assertIsNotNone(metrics["holdout"]["tau_star"])
        for name in ("flags.json", "flags.txt", "per_class_accuracy.png"):
            self.assertTrue(os.path.exists(os.path.join(self.model_dir, name)))
        self.assertTrue(os.path.exists(metrics["keras_model"]))

        # launch.export (TensorFlow) turns model.keras into the SavedModel.
        export_dir = os.path.join(self.get_temp_dir(), "export")
        exported = helpers.run_module(
            "launch.export",
            ["--verbosity=0", f"--model_dir={self.model_dir}",
             f"--export_dir={export_dir}"],
        )  # fmt: skip
        self.assertEqual(exported.returncode, 0, exported.stderr[-3000:])
        loaded = tf.saved_model.load(export_dir)
        self.assertAllClose(float(loaded.tau.numpy()), metrics["served_tau"])
        # As TF Serving loads it, against the run's Keras model.
        import keras

        model = keras.saving.load_model(metrics["keras_model"]).model
        _, info = ResolvedConfig.read(self.model_dir).data.load("train")
        images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3))
        serving_session.assert_served_in_session(
            self, export_dir, model, images.astype(np.uint8), info.priors,
            metrics["served_tau"], info.class_names,
        )  # fmt: skip

    @pytest.mark.slow
    def test_rerun_skips_a_damaged_newest_checkpoint_and_resumes(self):
        model_dir = shared_runs.copy_of(
            shared_runs.jax_run(), self.get_temp_dir()
        )
        self.assertEqual(
            sorted(os.listdir(os.path.join(model_dir, "checkpoints"))),
            ["ckpt-18.npz", "ckpt-9.npz"],
        )
        os.remove(os.path.join(model_dir, "metrics.json"))
        newest = os.path.join(model_dir, "checkpoints", "ckpt-18.npz")
        with open(newest, "r+b") as f:
            f.truncate(os.path.getsize(newest) // 2)
        rerun = helpers.run_module(
            "launch.train",
            shared_runs.jax_args(model_dir),
            extra_env=shared_runs.JAX_ENV,
        )
        self.assertEqual(rerun.returncode, 0, rerun.stderr[-3000:])
        self.assertIn("Skipping damaged checkpoint", rerun.stderr)
        self.assertIn("ckpt-9.npz at step 9", rerun.stderr)
        with open(os.path.join(model_dir, "metrics.json")) as f:
            self.assertEqual(json.load(f)["step"], 18)


class TrainOnJaxTest(TestCase):
    # Slow (88 s), to keep the default suite within about 20 minutes. The
    # default suite checks the same outputs and export, and a resume past a
    # damaged checkpoint, on the shared JAX run (SharedJaxRunTest); an
    # extended run's resume on TensorFlow (test_train.py ExtendTest).
    @pytest.mark.slow
    def test_train_resume_and_export(self):
        # The first two epochs: the shared JAX run, whose outputs
        # SharedJaxRunTest checks.
        model_dir = shared_runs.copy_of(
            shared_runs.jax_run(), self.get_temp_dir()
        )

        # A rerun extended to more epochs resumes from the last checkpoint.
        second = _extend(model_dir, 3)
        self.assertEqual(second.returncode, 0, second.stderr[-3000:])
        self.assertIn("ckpt-18.npz at step 18", second.stderr)
        with open(os.path.join(model_dir, "metrics.json")) as f:
            self.assertEqual(json.load(f)["step"], 27)

        # A damaged newest checkpoint is skipped.
        newest = os.path.join(model_dir, "checkpoints", "ckpt-27.npz")
        with open(newest, "r+b") as f:
            f.truncate(os.path.getsize(newest) // 2)
        third = _extend(model_dir, 4)
        self.assertEqual(third.returncode, 0, third.stderr[-3000:])
        self.assertIn("Skipping damaged checkpoint", third.stderr)
        self.assertIn("ckpt-18.npz at step 18", third.stderr)

        # launch.export (TensorFlow) turns model.keras into the SavedModel.
        exported = helpers.run_module(
            "launch.export", ["--verbosity=0", f"--model_dir={model_dir}"]
        )
        self.assertEqual(exported.returncode, 0, exported.stderr[-3000:])
        loaded = tf.saved_model.load(os.path.join(model_dir, "export"))
        out = loaded.signatures["serving_default"](
            images=tf.zeros([2, 32, 32, 3], tf.uint8)
        )
        self.assertEqual(out["logits"].shape, (2, 10))
        with open(os.path.join(model_dir, "metrics.json")) as f:
            metrics = json.load(f)
        served_tau = metrics["served_tau"]
        self.assertAllClose(float(loaded.tau.numpy()), served_tau)
        self.assertLen(
            glob.glob(os.path.join(model_dir, "checkpoints", "*.npz")), 3
        )
        self.assertTrue(np.isfinite(out["logits"].numpy()).all())
        # As TF Serving loads it, against the run's Keras model.
        import keras

        model = keras.saving.load_model(metrics["keras_model"]).model
        _, info = ResolvedConfig.read(model_dir).data.load("train")
        images = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3))
        images = images.astype(np.uint8)
        serving_session.assert_served_in_session(
            self, os.path.join(model_dir, "export"), model, images,
            info.priors, served_tau, info.class_names,
        )  # fmt: skip

    def test_export_on_jax_is_refused(self):
        # Refused before the run is read: any model_dir shows it.
        model_dir = os.path.join(self.get_temp_dir(), "a_jax_run")
        export_dir = os.path.join(self.get_temp_dir(), "jax_export")
        result = helpers.run_module(
            "launch.export",
            [f"--model_dir={model_dir}", f"--export_dir={export_dir}"],
            extra_env=_JAX,
        )
        self.assertEqual(result.returncode, 1, result.stderr[-3000:])
        self.assertEqual(
            result.stderr.strip().splitlines()[-1],
            "launch.export: error: Exporting writes a TensorFlow SavedModel: "
            "run it with KERAS_BACKEND=tensorflow (now jax); it reads runs of "
            "either backend.",
        )
        self.assertFalse(os.path.exists(export_dir))

    def test_tensorflow_only_flag_is_refused(self):
        result = _train(
            os.path.join(self.get_temp_dir(), "refused"), strategy="mirrored"
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.strip().splitlines()[-1],
            "launch.train: error: --strategy=mirrored needs the TensorFlow "
            "backend; on KERAS_BACKEND=jax, --strategy=auto trains "
            "data-parallel on every device (keras.distribution.DataParallel) "
            "and one_device on one.",
        )

    # Slow (about a minute), as test_two_processes_equal_one_process, which
    # checks the same data-parallel math over two processes.
    @pytest.mark.slow
    def test_two_devices_equal_one_device(self):
        # Two CPU devices: --strategy=auto trains data-parallel through
        # keras.distribution.DataParallel (batch split over the devices,
        # batch-norm statistics and the loss over the global batch), which
        # is the math of one device up to float32 summation order. One
        # epoch: the synthetic images make training chaotic enough that a
        # 1e-7 change grows to 1e-2 within two epochs.
        env = dict(_JAX, XLA_FLAGS="--xla_force_host_platform_device_count=2")
        runs = {}
        for strategy in ("auto", "one_device"):
            model_dir = os.path.join(self.get_temp_dir(), strategy)
            placement = os.path.join(self.get_temp_dir(), f"{strategy}.json")
            result = helpers.run_python(
                [
                    "-c",
                    _TRAIN_RECORDING_PLACEMENT,
                    placement,
                    *helpers.smoke_args(model_dir, epochs=1, strategy=strategy),
                ],
                extra_env=env,
            )
            self.assertEqual(result.returncode, 0, result.stderr[-3000:])
            # Inside the step, each device holds its shard of the batch of 4.
            devices = 2 if strategy == "auto" else 1
            with open(placement) as f:
                compilations = json.load(f)
            self.assertNotEmpty(compilations)
            for seen in compilations:
                self.assertEqual(
                    seen,
                    {
                        "batch": [4, 32, 32, 3],
                        "devices": devices,
                        "shard": [4 // devices, 32, 32, 3],
                    },
                )
            with open(os.path.join(model_dir, "metrics.json")) as f:
                metrics = json.load(f)
            with np.load(
                os.path.join(model_dir, "checkpoints", "ckpt-9.npz")
            ) as data:
                runs[strategy] = metrics, {k: data[k] for k in data.files}
        (two, two_vars), (one, one_vars) = runs["auto"], runs["one_device"]
        self.assertEqual((two["devices"], one["devices"]), (2, 1))
        self.assertEqual(two["step"], one["step"])
        self.assertEqual(sorted(two_vars), sorted(one_vars))
        for name, value in one_vars.items():
            assert_float32_close(two_vars[name], value, name)
        self.assertAllClose(
            two["test"]["raw"]["per_class_accuracy"],
            one["test"]["raw"]["per_class_accuracy"],
        )

    def test_batch_that_does_not_split_over_devices_is_refused(self):
        result = helpers.run_module(
            "launch.train",
            helpers.smoke_args(
                os.path.join(self.get_temp_dir(), "odd"), train_batch_size=5
            ),
            extra_env=dict(
                _JAX, XLA_FLAGS="--xla_force_host_platform_device_count=2"
            ),
        )
        self.assertEqual(result.returncode, 1)
        self.assertEqual(
            result.stderr.strip().splitlines()[-1],
            "launch.train: error: Invalid value for argument `batch_size`: 5 "
            "does not split over the 2 devices.",
        )

    # Slow (16 s). The default suite stops a JaxTrainer at a NaN loss with
    # its last good `.npz` checkpoint (tests/training/test_loop.py) and a
    # TensorFlow run of launch.train (test_train.py DivergenceTest).
    @pytest.mark.slow
    def test_nan_loss_stops_and_keeps_last_good_checkpoint(self):
        model_dir = os.path.join(self.get_temp_dir(), "nan")
        # Warm-up from lr 0 to 1e8 over one epoch: step 0 is sane, then boom.
        result = _train(
            model_dir, base_learning_rate=1e8, checkpoint_every_steps=1
        )
        self.assertEqual(result.returncode, 1)
        self.assertRegex(
            result.stderr.strip().splitlines()[-1],
            r"^launch.train: error: .*loss is (nan|inf)",
        )
        paths = glob.glob(os.path.join(model_dir, "checkpoints", "*.npz"))
        self.assertNotEmpty(paths)
        for path in paths:
            with np.load(path) as data:
                for key in data.files:
                    self.assertTrue(np.all(np.isfinite(data[key])), key)
        self.assertFalse(
            os.path.exists(os.path.join(model_dir, "metrics.json"))
        )

    def test_busy_model_dir_is_refused(self):
        model_dir = os.path.join(self.get_temp_dir(), "busy")
        os.makedirs(model_dir)
        with helpers.lock_held_by_live_process(model_dir) as pid:
            result = _train(model_dir)
        self.assertEqual(result.returncode, 1)
        self.assertIn(
            f"in use by pid {pid}", result.stderr.strip().splitlines()[-1]
        )
        self.assertEqual(os.listdir(model_dir), [lock.lease_path("", 1)])

    # Slow (45 s: three runs), and float32 after nine steps: how far two
    # summation orders drift apart in that many steps depends on the CPU.
    # The default suite trains on JAX (SharedJaxRunTest) and refuses a
    # batch that does not split over the devices (above).
    @pytest.mark.slow
    def test_two_processes_equal_one_process(self):
        # keras.distribution.initialize on 127.0.0.1: two CPU processes of
        # one device each, data-parallel over both; only process 0 writes.
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        root = self.get_temp_dir()
        shared_dir = os.path.join(root, "two_processes")
        workers = []
        try:
            for process_id in range(2):
                env = dict(
                    _JAX,
                    KERAS_DISTRIBUTION_JOB_ADDRESSES=f"127.0.0.1:{port}",
                    KERAS_DISTRIBUTION_NUM_PROCESSES="2",
                    KERAS_DISTRIBUTION_PROCESS_ID=str(process_id),
                )
                workers.append(
                    helpers.popen_module(
                        "launch.train",
                        helpers.smoke_args(shared_dir, epochs=1),
                        os.path.join(root, f"worker{process_id}.log"),
                        extra_env=env,
                    )
                )
            codes = [worker.wait(timeout=240) for worker in workers]
        finally:
            helpers.kill_all(workers)
        logs = []
        for process_id in range(2):
            with open(os.path.join(root, f"worker{process_id}.log")) as f:
                logs.append(f.read()[-3000:])
        self.assertEqual(codes, [0, 0], logs)
        one_dir = os.path.join(root, "one_process")
        one = _train(one_dir, epochs=1)
        self.assertEqual(one.returncode, 0, one.stderr[-3000:])
        with open(os.path.join(shared_dir, "metrics.json")) as f:
            self.assertEqual(json.load(f)["devices"], 2)
        self.assertEqual(
            sorted(os.listdir(os.path.join(shared_dir, "checkpoints"))),
            ["ckpt-9.npz"],
        )
        paths = [
            os.path.join(d, "checkpoints", "ckpt-9.npz")
            for d in (shared_dir, one_dir)
        ]
        with np.load(paths[0]) as two, np.load(paths[1]) as single:
            self.assertEqual(sorted(two.files), sorted(single.files))
            for name in single.files:
                assert_float32_close(two[name], single[name], name)
