"""Every sparse la_keras loss refuses labels outside [0, C)."""

import textwrap

import keras
import numpy as np
import tensorflow as tf

from la_keras.losses import LogitAdjustedLoss
from tests.losses import label_cases
from tests.losses.baseline_checks import requires_jax
from tests.losses.baseline_checks import run_with_jax
from tests.losses.label_cases import INVALID
from tests.losses.label_cases import NUM_CLASSES
from tests.losses.label_cases import VALID
from tests.test_case import TestCase

GRAPH_ERROR = tf.errors.InvalidArgumentError


def label_arrays(values):
    """The label batch in the dtypes and shapes a loss may be given."""
    values = np.asarray(values)
    arrays = [values.astype(np.float32), values.astype(np.float32)[:, None]]
    if np.all(values == np.round(values)):
        arrays += [values.astype(np.int32), values.astype(np.int64)]
    return arrays


def eager_pattern(bad):
    return rf"\[0, 4\) for num_classes=4\. Received: 1 invalid label\(s\) from {bad:g} to {bad:g}"


def graph_pattern(bad):
    return rf"num_classes=4\.\] \[Received: invalid labels from\] \[{bad:g}\] \[to\] \[{bad:g}\]"


class LabelCheckTest(TestCase):
    def _assert_invalid_refused(self, call, error, pattern):
        """`call(loss, labels, logits)` raises `error` matching
        `pattern(bad label)` for each loss and each case of `INVALID`."""
        logits = label_cases.logits()
        for name, loss in label_cases.all_losses().items():
            for case, values in INVALID.items():
                for labels in label_arrays(values):
                    dtype = str(labels.dtype)
                    with self.subTest(loss=name, case=case, dtype=dtype):
                        with self.assertRaisesRegex(error, pattern(values[1])):
                            call(loss, labels, logits)

    def test_invalid_labels_raise_eagerly(self):
        self._assert_invalid_refused(
            lambda loss, y, z: loss(y, z), ValueError, eager_pattern
        )

    def test_invalid_labels_raise_in_tf_function(self):
        steps = {}

        def in_tf_function(loss, labels, logits):
            # One tf.function per loss, traced for each label dtype.
            if id(loss) not in steps:
                steps[id(loss)] = tf.function(lambda y, z: loss(y, z))
            return steps[id(loss)](tf.constant(labels), logits)

        self._assert_invalid_refused(in_tf_function, GRAPH_ERROR, graph_pattern)

    def test_error_says_what_to_do(self):
        with self.assertRaisesRegex(ValueError, "Use class ids 0 .. num"):
            LogitAdjustedLoss([5, 3, 1])([0, 3], np.zeros((2, 3), "float32"))

    def test_valid_labels_of_any_dtype_still_work(self):
        logits = label_cases.logits()
        for name, loss in label_cases.all_losses().items():
            expected = keras.ops.convert_to_numpy(loss(VALID, logits))
            self.assertTrue(np.all(np.isfinite(expected)), name)
            step = tf.function(lambda y, z, loss=loss: loss(y, z))
            for labels in label_arrays(VALID):
                with self.subTest(loss=name, dtype=str(labels.dtype)):
                    self.assertAllClose(loss(labels, logits), expected)
                    self.assertAllClose(
                        step(tf.constant(labels), logits), expected
                    )

    def test_one_hot_and_soft_labels_are_not_checked(self):
        logits = label_cases.logits()
        one_hot = np.eye(NUM_CLASSES, dtype=np.float32)[VALID]
        soft = np.random.default_rng(1).dirichlet(np.ones(NUM_CLASSES), 3)
        # Dense labels are weights, not class ids: 2.5 is no error there.
        unnormalized = np.float32([[0, 2.5, 0, 0], [1, 0, 0, 0], [0, 0, 0, 1]])
        for name, loss in label_cases.all_losses().items():
            step = tf.function(lambda y, z, loss=loss: loss(y, z))
            with self.subTest(loss=name):
                self.assertAllClose(
                    loss(one_hot, logits), loss(VALID, logits), rtol=1e-6
                )
                for labels in (soft.astype(np.float32), unnormalized):
                    eager = loss(labels, logits)
                    self.assertTrue(np.all(np.isfinite(eager)))
                    self.assertAllClose(step(labels, logits), eager)

    def test_xla_gives_nan_for_the_invalid_example(self):
        # XLA drops TensorFlow assertions: the invalid label's loss is NaN.
        logits = label_cases.logits()
        for name, loss in label_cases.sparse_losses().items():
            step = tf.function(
                lambda y, z, loss=loss: loss(y, z), jit_compile=True
            )
            for case, values in INVALID.items():
                with self.subTest(loss=name, case=case):
                    out = step(tf.constant(values, tf.float32), logits).numpy()
                    self.assertTrue(np.isnan(out[1]))
                    self.assertTrue(np.all(np.isfinite(out[[0, 2]])))

    def test_unknown_class_count_in_graph(self):
        # Logits of unknown width: num_classes is read at run time.
        spec = [
            tf.TensorSpec([None], tf.float32),
            tf.TensorSpec([None, None], tf.float32),
        ]
        logits = label_cases.logits()
        for name, loss in label_cases.all_losses().items():
            if name in ("focal", "softmax_focal_crossentropy"):
                step = tf.function(
                    lambda y, z, loss=loss: loss(y, z), input_signature=spec
                )
                with self.subTest(loss=name):
                    self.assertAllClose(
                        step(tf.constant(VALID, tf.float32), logits),
                        loss(VALID, logits),
                    )
                    with self.assertRaisesRegex(
                        GRAPH_ERROR, r"num_classes =\] \[4\]"
                    ):
                        step(tf.constant([0.0, 4.0, 1.0]), logits)

    def test_fit_stops_on_an_out_of_range_label(self):
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        model.compile(
            "sgd", loss=LogitAdjustedLoss([5, 3, 1]), jit_compile=False
        )
        x = np.random.rand(8, 4).astype(np.float32)
        y = np.array([0, 1, 2, 3, 0, 1, 2, 0])
        with self.assertRaisesRegex(GRAPH_ERROR, "num_classes=3"):
            model.fit(x, y, batch_size=8, epochs=1, verbose=0)


@requires_jax
def test_jax_backend_nan_under_jit_and_error_eagerly():
    code = textwrap.dedent(
        """
        import jax, keras, numpy as np
        assert keras.backend.backend() == "jax"
        from la_keras import metrics
        from tests.losses import label_cases

        logits = label_cases.logits()
        for name, loss in label_cases.all_losses().items():
            step = jax.jit(lambda y, z, loss=loss: loss(y, z))
            for case, values in label_cases.INVALID.items():
                labels = np.asarray(values)
                out = np.asarray(step(labels, logits))
                assert np.isnan(out[1]) and np.all(np.isfinite(out[[0, 2]])), (
                    name, case, out)
                try:
                    loss(labels, logits)
                except ValueError as e:
                    assert "num_classes=4" in str(e), str(e)
                else:
                    raise AssertionError(f"{name} {case}: no error eagerly")
            valid = np.asarray(step(np.float32(label_cases.VALID), logits))
            assert np.all(np.isfinite(valid)), (name, valid)
        metric = metrics.BalancedAccuracy(4)
        try:
            metric.update_state([0, 5], logits[:2])
        except ValueError as e:
            assert "num_classes=4" in str(e), str(e)
        else:
            raise AssertionError("BalancedAccuracy: no error eagerly")
        print("ok")
        """
    )
    assert run_with_jax(code).strip().splitlines()[-1] == "ok"
