"""`la_keras.quantization` and `la_keras.gptq`: int8 rounding and bias
correction, against float64 numpy, and the float stem and head of
`tflite_export`'s int8 models."""

import keras
import numpy as np
import tensorflow as tf

from la_keras import gptq
from la_keras import quantization
from la_keras import tflite_export
from tests.test_case import TestCase


def _grid_reference(kernel, axes):
    """TFLite's symmetric per-channel int8 grid, in float64."""
    kernel = np.asarray(kernel, np.float64)
    scale = np.max(np.abs(kernel), axis=axes, keepdims=True) / 127.0
    scale[scale == 0] = 1.0
    return np.round(kernel / scale) * scale, scale


def _model():
    """Input -> [conv+BN, depthwise+BN, conv with bias] nested -> head."""
    inner_input = keras.Input((8, 8, 4))
    x = keras.layers.Conv2D(6, 3, padding="same", use_bias=False)(inner_input)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.DepthwiseConv2D(3, depth_multiplier=2, use_bias=False)(x)
    x = keras.layers.BatchNormalization()(x)
    x = keras.layers.ReLU(6.0)(x)
    x = keras.layers.Conv2D(5, 1)(x)  # a bias, no batch norm
    inner = keras.Model(inner_input, x, name="inner")
    images = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(4, 1, use_bias=False)(images)
    y = keras.layers.BatchNormalization()(y)
    y = inner(y)
    y = keras.layers.GlobalAveragePooling2D()(y)
    outputs = keras.layers.Dense(3)(y)
    model = keras.Model(images, outputs)
    rng = np.random.default_rng(0)
    for layer in model._flatten_layers(include_self=False):
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.gamma.shape[0]
            layer.gamma.assign(rng.uniform(0.2, 3.0, channels))
            layer.beta.assign(rng.normal(0, 0.5, channels))
            layer.moving_mean.assign(rng.normal(0, 0.5, channels))
            layer.moving_variance.assign(rng.uniform(0.1, 2.0, channels))
    return model


class GridTest(TestCase):
    def test_conv_and_depthwise_grids_equal_the_reference(self):
        rng = np.random.default_rng(1)
        kernel = rng.normal(0, 1, (3, 3, 4, 6))
        kernel[..., 2] = 0.0  # a channel of zeros stays zero
        for depthwise, axes in ((False, (0, 1, 2)), (True, (0, 1))):
            got = quantization.int8_grid(kernel, depthwise)
            want, scale = _grid_reference(kernel, axes)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
            levels = got / scale
            np.testing.assert_allclose(levels, np.round(levels), atol=1e-9)
            self.assertLessEqual(np.max(np.abs(levels)), 127 + 1e-9)
            # Each channel's largest weight is on the grid's end.
            np.testing.assert_allclose(
                np.max(np.abs(levels), axis=axes)[np.max(np.abs(kernel), axis=axes) > 0],
                127.0,
            )  # fmt: skip


class GptqTest(TestCase):
    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(4)
        self.weights = rng.normal(0, 1, (6, 12))
        # Correlated inputs: 12 features from 4 factors, plus noise.
        factors = rng.normal(0, 1, (500, 4))
        self.inputs = factors @ rng.normal(0, 1, (4, 12))
        self.inputs += 0.1 * rng.normal(0, 1, (500, 12))

    def test_uncorrelated_inputs_round_to_nearest(self):
        # With H diagonal, U is diagonal: no weight is moved, and GPTQ is
        # the nearest rounding on each row's grid.
        moment = np.diag(np.arange(1.0, 13.0))
        got = gptq.round_rows(self.weights, moment)
        want, _ = _grid_reference(self.weights, (1,))
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)

    def test_on_the_grid_and_smaller_output_error_than_nearest(self):
        moment = self.inputs.T @ self.inputs
        got = gptq.round_rows(self.weights, moment)
        largest = np.max(np.abs(got), axis=1, keepdims=True)
        levels = got / (largest / 127.0)
        np.testing.assert_allclose(levels, np.round(levels), atol=1e-9)
        np.testing.assert_allclose(np.max(np.abs(levels), axis=1), 127.0)
        nearest, _ = _grid_reference(self.weights, (1,))
        error = np.sum(((got - self.weights) @ self.inputs.T) ** 2)
        nearest_error = np.sum(((nearest - self.weights) @ self.inputs.T) ** 2)
        # On these inputs GPTQ's output error is 0.04 of nearest
        # rounding's; half is a bound with a wide margin.
        self.assertLess(error, 0.5 * nearest_error)

    def test_second_moments_equal_numpy_patches(self):
        rng = np.random.default_rng(5)
        x = rng.normal(0, 1, (3, 6, 6, 2)).astype(np.float32)
        conv = keras.layers.Conv2D(4, 3, strides=2, padding="same")
        depthwise = keras.layers.DepthwiseConv2D(3, padding="valid")
        conv.build(x.shape)
        depthwise.build(x.shape)
        padded = np.pad(x.astype(np.float64), ((0, 0), (0, 1), (0, 1), (0, 0)))
        same = [
            padded[:, i : i + 3, j : j + 3, :].reshape(3, -1)
            for i in range(0, 6, 2)
            for j in range(0, 6, 2)
        ]  # "same" with stride 2 on 6 pads 1 at the end
        patches = np.concatenate(same)
        np.testing.assert_allclose(
            gptq.second_moment(conv, x), patches.T @ patches, rtol=1e-5
        )
        valid = np.stack([
            x[:, i : i + 3, j : j + 3, :].astype(np.float64).reshape(3, 9, 2)
            for i in range(4)
            for j in range(4)
        ])  # fmt: skip
        want = np.einsum("pnkc,pnlc->ckl", valid, valid)
        np.testing.assert_allclose(
            gptq.second_moment(depthwise, x), want, rtol=1e-5
        )


class BiasCorrectionTest(TestCase):
    def setUp(self):
        super().setUp()
        self.model = _model()
        rng = np.random.default_rng(2)
        self.inputs = rng.normal(0, 1, (40, 8, 8, 3)).astype(np.float32)

    def test_kernels_on_the_grid_and_channel_means_kept(self):
        before = [w.copy() for w in self.model.get_weights()]
        copy, corrected = quantization.int8_bias_corrected(
            self.model, self.inputs
        )
        self.assertEqual(corrected, 4)
        for got, want in zip(self.model.get_weights(), before, strict=True):
            np.testing.assert_array_equal(got, want)  # the model unchanged
        found = quantization._convolutions(copy)
        reference = quantization._convolutions(quantization._copy(self.model))
        for (conv, norm, feeder), (ref_conv, ref_norm, ref_feeder) in zip(
            found, reference, strict=True
        ):
            depthwise = isinstance(conv, keras.layers.DepthwiseConv2D)
            kernel = np.asarray(conv.kernel, np.float64)
            if norm is None:
                scale = np.ones(kernel.shape[-1])
            else:
                scale = np.asarray(norm.gamma, np.float64) / np.sqrt(
                    np.asarray(norm.moving_variance, np.float64) + norm.epsilon
                )
            scale = scale.reshape(
                (1, 1) + kernel.shape[2:] if depthwise else (1, 1, 1, -1)
            )
            folded = kernel * scale
            on_grid, _ = _grid_reference(
                folded, (0, 1) if depthwise else (0, 1, 2)
            )
            # float32 storage of kernel / scale: 1e-6 of the largest weight.
            np.testing.assert_allclose(
                folded, on_grid, rtol=0, atol=1e-6 * np.max(np.abs(folded))
            )
            # The defining property: the layer's output means, on its
            # int8-rounded input in the copy, equal the float model's.
            x = np.asarray(feeder.predict_on_batch(self.inputs), np.float64)
            x = quantization._int8_levels(x.astype(np.float32))
            ref_x = ref_feeder.predict_on_batch(self.inputs)
            got = self._normalized(conv, norm, x)
            want = self._normalized(ref_conv, ref_norm, ref_x)
            spread = np.std(want, axis=(0, 1, 2))
            np.testing.assert_allclose(
                np.mean(got, axis=(0, 1, 2)),
                np.mean(want, axis=(0, 1, 2)),
                rtol=0,
                atol=1e-4 * np.max(spread),
            )

    @staticmethod
    def _normalized(conv, norm, x):
        y = np.asarray(conv(x), np.float64)
        return y if norm is None else np.asarray(norm(y, training=False))

    def test_float_convolutions_left_as_they_are(self):
        copy, corrected = quantization.int8_bias_corrected(
            self.model, self.inputs, float_convolutions=2
        )
        self.assertEqual(corrected, 2)
        found = quantization._convolutions(copy)
        reference = quantization._convolutions(self.model)
        for index, ((conv, _, _), (ref, _, _)) in enumerate(
            zip(found, reference, strict=True)
        ):
            same = np.array_equal(
                np.asarray(conv.kernel), np.asarray(ref.kernel)
            )
            self.assertEqual(same, index < 2, conv.name)
        # No more convolutions than the stem: all are corrected.
        _, corrected = quantization.int8_bias_corrected(
            self.model, self.inputs, float_convolutions=4
        )
        self.assertEqual(corrected, 4)

    def test_bad_inputs_are_refused(self):
        with self.assertRaisesRegex(ValueError, "non-empty batch"):
            quantization.int8_bias_corrected(self.model, np.zeros((0, 8, 8, 3)))


class FloatEndsTest(TestCase):
    def test_int8_model_keeps_its_stem_and_head_float(self):
        inputs = keras.Input((16, 16, 3))
        x = inputs
        for filters in (4, 8, 8, 8, 8):
            x = keras.layers.Conv2D(filters, 3, padding="same", use_bias=False)(
                x
            )
            x = keras.layers.BatchNormalization()(x)
            x = keras.layers.ReLU(6.0)(x)
        x = keras.layers.GlobalAveragePooling2D()(x)
        model = keras.Model(inputs, keras.layers.Dense(3)(x))
        images = np.random.default_rng(3).integers(0, 256, (24, 16, 16, 3))
        content = tflite_export.tflite_model(
            model, (16, 16, 3), "cifar", quantize="int8",
            representative_images=images.astype(np.uint8),
        )  # fmt: skip
        interpreter = tf.lite.Interpreter(model_content=content)
        outputs = {"CONV_2D": [], "FULLY_CONNECTED": []}
        for op in interpreter._get_ops_details():
            if op["op_name"] in outputs:
                detail = interpreter._get_tensor_details(op["outputs"][0], 0)
                outputs[op["op_name"]].append(detail["dtype"])
        self.assertEqual(
            outputs,
            {
                "CONV_2D": [np.float32] * 3 + [np.int8] * 2,
                "FULLY_CONNECTED": [np.float32],
            },
        )
        logits = interpreter.get_signature_runner()(
            images=images[:4].astype(np.uint8)
        )
        self.assertEqual(logits["logits"].shape, (4, 3))
        self.assertEqual(logits["logits"].dtype, np.float32)
