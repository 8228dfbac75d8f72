import os
import subprocess
import sys
import textwrap

import keras
import numpy as np

import la_keras
from la_keras import LogitAdjustedModel
from tests.test_case import TestCase

COUNTS = [500, 300, 150, 80, 40, 20, 10, 5]


def base_model():
    return keras.Sequential(
        [
            keras.Input((6,)),
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dense(8),
        ]
    )


def data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, 6)).astype("float32"), rng.integers(0, 8, n)


def adjust(logits, counts, tau):
    p = np.asarray(counts, np.float64) / np.sum(counts)
    return logits - np.log(p**tau + 1e-12)


class LogitAdjustedModelTest(TestCase):
    def test_posthoc_adjusts_only_at_inference(self):
        base = base_model()
        model = LogitAdjustedModel(base, COUNTS, tau=1.0, mode="posthoc")
        x, _ = data()
        raw = base(x, training=False).numpy()
        expected = adjust(raw, COUNTS, 1.0)
        self.assertAllClose(model.predict(x, verbose=0), expected, rtol=1e-5)
        self.assertAllClose(model(x, training=False), expected, rtol=1e-5)
        self.assertAllClose(model(x), expected, rtol=1e-5)
        self.assertAllClose(model(x, training=True), raw, rtol=1e-5)

    def test_loss_mode_never_adjusts_at_test_time(self):
        base = base_model()
        model = LogitAdjustedModel(base, COUNTS, tau=1.0, mode="loss")
        x, _ = data()
        raw = base(x, training=False).numpy()
        self.assertAllClose(model.predict(x, verbose=0), raw)
        self.assertAllClose(model(x, training=False), raw)
        self.assertAllClose(model(x), raw)
        model.tau = 2.0
        self.assertAllClose(model.predict(x, verbose=0), raw)

    def test_compile_defaults_per_mode(self):
        model = LogitAdjustedModel(base_model(), COUNTS, tau=0.7, mode="loss")
        model.compile(optimizer="sgd")
        self.assertIsInstance(model.loss, la_keras.LogitAdjustedLoss)
        self.assertEqual(model.loss.tau, 0.7)
        self.assertAllClose(model.loss.priors, np.array(COUNTS) / sum(COUNTS))
        model = LogitAdjustedModel(base_model(), COUNTS, mode="posthoc")
        model.compile(optimizer="sgd")
        self.assertIsInstance(
            model.loss, keras.losses.SparseCategoricalCrossentropy
        )

    def test_fit_trains_on_raw_logits_in_both_modes(self):
        x, y = data(n=128)
        for mode in ("posthoc", "loss"):
            keras.utils.set_random_seed(0)
            model = LogitAdjustedModel(base_model(), COUNTS, mode=mode)
            model.compile(optimizer=keras.optimizers.SGD(0.1))
            before = model.evaluate(x, y, verbose=0)
            model.fit(x, y, epochs=5, batch_size=32, verbose=0)
            self.assertLess(model.evaluate(x, y, verbose=0), before)

    def test_loss_mode_fit_equals_base_fit_with_loss(self):
        x, y = data(n=64)
        keras.utils.set_random_seed(3)
        base_a = base_model()
        base_b = keras.models.clone_model(base_a)
        base_b.set_weights(base_a.get_weights())
        wrapped = LogitAdjustedModel(base_a, COUNTS, tau=1.0, mode="loss")
        wrapped.compile(optimizer=keras.optimizers.SGD(0.1))
        base_b.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=la_keras.LogitAdjustedLoss(COUNTS),
        )
        wrapped.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
        base_b.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0)
        for a, b in zip(
            base_a.get_weights(), base_b.get_weights(), strict=True
        ):
            self.assertAllClose(a, b, atol=1e-6)

    def test_change_tau_reaches_predict(self):
        base = base_model()
        model = LogitAdjustedModel(base, COUNTS, tau=1.0)
        x, _ = data()
        raw = base.predict(x, verbose=0)
        model.tau = 0.3
        self.assertAllClose(
            model.predict(x, verbose=0), adjust(raw, COUNTS, 0.3), rtol=1e-5
        )
        model.tau = 0.0
        self.assertAllClose(model.predict(x, verbose=0), raw, rtol=1e-6)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "mode"):
            LogitAdjustedModel(base_model(), COUNTS, mode="post-hoc")
        with self.assertRaisesRegex(ValueError, "keras.Model"):
            LogitAdjustedModel(lambda x: x, COUNTS)
        with self.assertRaisesRegex(ValueError, "negative"):
            LogitAdjustedModel(base_model(), [1, -1, 1, 1, 1, 1, 1, 1])
        model = LogitAdjustedModel(base_model(), [1, 2, 3])
        with self.assertRaisesRegex(ValueError, "3 classes but the logits"):
            model(np.zeros((1, 6), "float32"))

    def test_keras_file_round_trip(self):
        x, y = data()
        for mode in ("posthoc", "loss"):
            model = LogitAdjustedModel(base_model(), COUNTS, tau=0.8, mode=mode)
            model.compile(
                optimizer="sgd", metrics=[la_keras.metrics.BalancedAccuracy(8)]
            )
            model.fit(x, y, epochs=1, verbose=0)
            model.tau = 1.7
            restored = self.run_model_saving_test(model, x, atol=1e-5)
            self.assertIsInstance(restored, LogitAdjustedModel)
            self.assertEqual(restored.mode, mode)
            self.assertAlmostEqual(restored.tau, 1.7, places=6)
            self.assertEqual(type(restored.loss), type(model.loss))
            self.assertAllClose(
                restored.evaluate(x, y, verbose=0),
                model.evaluate(x, y, verbose=0),
                rtol=1e-5,
            )

    def test_export_in_fresh_process(self):
        base = base_model()
        model = LogitAdjustedModel(base, COUNTS, tau=1.0)
        x, _ = data(n=16)
        model.tau = 0.6  # Changed after "training": must reach the export.
        expected = model.predict(x, verbose=0)
        self.assertAllClose(
            expected, adjust(base.predict(x, verbose=0), COUNTS, 0.6), rtol=1e-5
        )
        path = os.path.join(self.get_temp_dir(), "exported")
        model.export(path, verbose=False)
        np.save(os.path.join(self.get_temp_dir(), "x.npy"), x)
        code = textwrap.dedent(
            f"""
            import numpy as np, tensorflow as tf
            loaded = tf.saved_model.load({path!r})
            x = np.load({os.path.join(self.get_temp_dir(), "x.npy")!r})
            out = loaded.signatures["serving_default"](tf.constant(x))
            np.save({os.path.join(self.get_temp_dir(), "out.npy")!r},
                    list(out.values())[0].numpy())
            """
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        served = np.load(os.path.join(self.get_temp_dir(), "out.npy"))
        self.assertAllClose(served, expected, atol=1e-5)

    def test_export_without_prior_call(self):
        import tensorflow as tf

        base = base_model()
        model = LogitAdjustedModel(base, COUNTS, tau=1.0)
        path = os.path.join(self.get_temp_dir(), "uncalled")
        model.export(path, verbose=False)
        x, _ = data(n=4)
        loaded = tf.saved_model.load(path)
        served = loaded.serve(tf.constant(x)).numpy()
        expected = adjust(base.predict(x, verbose=0), COUNTS, 1.0)
        self.assertAllClose(served, expected, rtol=1e-5, atol=1e-5)


TARGET = [1, 1, 2, 3, 5, 8, 13, 21]


def retarget_reference(logits, counts, tau, target, mode):
    """`la_keras.adjustment.retarget`'s rule in float64."""
    t = np.asarray(target, np.float64) / np.sum(target)
    out = np.asarray(logits, np.float64) + np.log(t + 1e-12)
    return out if mode == "loss" else adjust(out, counts, tau)


class TargetPriorTest(TestCase):
    """`target_prior`: inference for another class mix, in both modes."""

    def test_inference_matches_reference(self):
        x, _ = data()
        for mode in ("posthoc", "loss"):
            base = base_model()
            model = LogitAdjustedModel(
                base, COUNTS, tau=0.7, mode=mode, target_prior=TARGET
            )
            raw = base(x, training=False).numpy()
            expected = retarget_reference(raw, COUNTS, 0.7, TARGET, mode)
            self.assertAllClose(
                model.predict(x, verbose=0), expected, atol=1e-5
            )
            self.assertAllClose(model(x), expected, atol=1e-5)
            self.assertAllClose(model(x, training=True), raw, atol=1e-6)

    def test_none_is_unchanged(self):
        x, _ = data()
        base = base_model()
        raw = base(x, training=False).numpy()
        posthoc = LogitAdjustedModel(base, COUNTS, tau=0.7)
        self.assertIsNone(posthoc.target_prior)
        self.assertAllClose(posthoc(x), adjust(raw, COUNTS, 0.7), atol=1e-5)
        loss = LogitAdjustedModel(base, COUNTS, mode="loss")
        self.assertAllClose(loss(x), raw, atol=1e-6)

    def test_config_and_keras_file_round_trip(self):
        x, y = data()
        for mode in ("posthoc", "loss"):
            model = LogitAdjustedModel(
                base_model(), COUNTS, tau=0.8, mode=mode, target_prior=TARGET
            )
            self.assertAllClose(
                model.get_config()["target_prior"],
                np.asarray(TARGET) / np.sum(TARGET),
            )
            revived = LogitAdjustedModel.from_config(model.get_config())
            self.assertAllClose(revived.target_prior, model.target_prior)
            model.compile(optimizer="sgd")
            model.fit(x, y, epochs=1, verbose=0)
            restored = self.run_model_saving_test(model, x, atol=1e-5)
            self.assertAllClose(restored.target_prior, model.target_prior)
            self.assertEqual(restored.mode, mode)

    def test_bad_target_prior(self):
        with self.assertRaisesRegex(ValueError, "target_prior"):
            LogitAdjustedModel(base_model(), COUNTS, target_prior=[1, 2, 3])
