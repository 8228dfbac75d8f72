"""`BackboneInput`: a dataset's normalised images -> a backbone's input."""

from __future__ import annotations

from keras import layers
from keras import ops
from keras.saving import register_keras_serializable

# How the ImageNet weights of a backbone expect their `[0, 255]` RGB input
# (`keras.applications.imagenet_utils.preprocess_input`'s modes):
# "tf": `x / 127.5 - 1`; "torch": `(x / 255 - mean) / std`; "caffe": RGB to
# BGR, minus the BGR mean; "raw": unchanged (the backbone scales its input
# itself, as EfficientNet, MobileNetV3 and KerasHub's image converters do).
MODES = ("raw", "tf", "torch", "caffe")
_TORCH_MEAN = (0.485, 0.456, 0.406)
_TORCH_STD = (0.229, 0.224, 0.225)
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)


@register_keras_serializable(package="la_keras")
class BackboneInput(layers.Layer):
    """Maps a dataset's normalised images to a pretrained backbone's input.

    Training pipelines hand models images normalised by their recipe (see
    `la_keras.datasets.normalization.pixel_affine`); an ImageNet backbone
    was trained on RGB images of its own size and scaling. This layer, the
    first of a pretrained model, undoes the recipe's normalisation exactly,
    repeats a grayscale channel to RGB, resizes (bilinear) to `size`, and
    applies the backbone's scaling, so that evaluation, export and serving
    take the dataset's raw images.

    Formula:

    ```python
    pixels = x * input_scale + input_offset          # [0, 255] per channel
    pixels = repeat(pixels, 3, axis=-1)              # if one channel
    pixels = resize(pixels, size)                    # if another size
    outputs = mode(pixels)                           # see MODES
    ```

    Args:
        input_scale: per-channel scale of the inverse normalisation.
        input_offset: per-channel offset of the inverse normalisation.
        size: `(height, width)` of the backbone's input.
        mode: the backbone's scaling of `[0, 255]` RGB, one of `MODES`.

    Example:

    >>> layer = BackboneInput([255.0], [127.5], (64, 64), "tf")
    >>> layer(np.zeros((2, 32, 32, 1), "float32")).shape
    (2, 64, 64, 3)
    """

    def __init__(self, input_scale, input_offset, size, mode="raw", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(
                f"Invalid value for argument `mode`. Expected one of {MODES}. "
                f"Received: mode={mode!r}"
            )
        self.input_scale = [float(v) for v in input_scale]
        self.input_offset = [float(v) for v in input_offset]
        if len(self.input_scale) != len(self.input_offset) or len(
            self.input_scale
        ) not in (1, 3):
            raise ValueError(
                "Invalid value for arguments `input_scale` and `input_offset`."
                " Expected one value per channel (1 or 3 channels). Received: "
                f"input_scale={input_scale}, input_offset={input_offset}"
            )
        self.size = tuple(int(v) for v in size)
        self.mode = mode

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        x = x * ops.convert_to_tensor(self.input_scale, "float32")
        x = x + ops.convert_to_tensor(self.input_offset, "float32")
        if len(self.input_scale) == 1:
            x = ops.repeat(x, 3, axis=-1)
        if tuple(x.shape[1:3]) != self.size:
            x = ops.image.resize(x, self.size, interpolation="bilinear")
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "torch":
            mean = ops.convert_to_tensor(_TORCH_MEAN, "float32") * 255.0
            std = ops.convert_to_tensor(_TORCH_STD, "float32") * 255.0
            return (x - mean) / std
        if self.mode == "caffe":
            return x[..., ::-1] - ops.convert_to_tensor(_CAFFE_MEAN_BGR)
        return x

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.size, 3)

    def get_config(self):
        config = super().get_config()
        config.update(
            input_scale=self.input_scale,
            input_offset=self.input_offset,
            size=list(self.size),
            mode=self.mode,
        )
        return config
