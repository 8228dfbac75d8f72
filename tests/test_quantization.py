"""`la_keras.quantization`: int8 rounding and bias correction, against
float64 numpy, and the float stem of `tflite_export`'s int8 models."""

import keras
import numpy as np
import tensorflow as tf

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


class FloatStemTest(TestCase):
    def test_int8_model_keeps_the_first_three_convolutions_float(self):
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
        conv_outputs = []
        for op in interpreter._get_ops_details():
            if op["op_name"] == "CONV_2D":
                detail = interpreter._get_tensor_details(op["outputs"][0], 0)
                conv_outputs.append(detail["dtype"])
        self.assertEqual(
            conv_outputs, [np.float32] * 3 + [np.int8] * 2, conv_outputs
        )
        logits = interpreter.get_signature_runner()(
            images=images[:4].astype(np.uint8)
        )
        self.assertEqual(logits["logits"].shape, (4, 3))
        self.assertEqual(logits["logits"].dtype, np.float32)
