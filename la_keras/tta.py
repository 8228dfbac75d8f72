"""Test-time ensembling: a classifier's logits averaged over a few views.

    from la_keras import tta

    logits = tta.ensemble_logits(model, images, "crops5")
    served = tta.ensemble_model(model, "flip")   # a Keras model, same I/O

`model` maps normalised images `[B, H, W, C]` (the output of
`la_keras.datasets.preprocess_images`) to logits `[B, classes]`. The modes
(`MODES`):

- "none": the model's logits, unchanged.
- "flip": the mean of the logits of the image and of its horizontal flip
  (the width axis reversed).
- "crops5": the mean of the logits of five crops, the four corners and the
  centre, each of `crop_size(H) x crop_size(W)` pixels, where
  `crop_size(n) = floor(n * 7 / 8 + 1/2)` (7/8 rounded half up, at least 1:
  28 of 32, 196 of 224), resized back to `H x W` by bilinear interpolation
  (`keras.ops.image.resize`, half-pixel centres, `antialias=False`: an
  upscale needs none, and TFLite's RESIZE_BILINEAR has none). The centre
  crop starts at `(H - crop_size(H)) // 2` (and likewise in width). As
  LIFT's five crops (Shi et al., ICML 2024), which resize the image up by
  a small margin and crop at the network's size, at the scale 8/7.

The logits are averaged, not the probabilities, as LIFT averages its
head's outputs: logit adjustment is additive in logit space, so the
post-hoc adjustment of the averaged logits equals the average of the
adjusted logits, and a run's adjustment (its tau, tau* and a served
target prior) applies to the ensemble exactly as to one view. The views
are averaged in float32 whatever the model's dtype policy.

Only `keras.ops`: it runs on every Keras backend. Test-time ensembling is
reported apart from a run's figures (`la_keras.runs.evaluate(tta=...)`'s
`report["tta"]`) and served only when an export asks for it
(`la_keras.serving.export_saved_model(tta=...)`).
"""

from __future__ import annotations

import keras
from keras import ops

MODES = ("none", "flip", "crops5")
# The side of a crop of "crops5", as a share of the image's.
CROP_FRACTION = 7 / 8

__all__ = [
    "CROP_FRACTION",
    "MODES",
    "TestTimeEnsemble",
    "check_tta",
    "crop_boxes",
    "crop_size",
    "ensemble_logits",
    "ensemble_model",
    "views",
]


def check_tta(tta) -> str:
    """Returns `tta`; ValueError in one line unless it is one of `MODES`."""
    if tta not in MODES:
        raise ValueError(
            f"Invalid value for argument `tta`. Expected one of {MODES}. "
            f"Received: tta={tta!r}"
        )
    return tta


def crop_size(size: int) -> int:
    """The side of a "crops5" crop of an image side `size`: 7/8 of it,
    rounded half up, at least 1."""
    return max(1, int(size * CROP_FRACTION + 0.5))


def crop_boxes(height: int, width: int) -> list[tuple[int, int, int, int]]:
    """The five crops of an `height x width` image as `(top, left, h, w)`:
    top-left, top-right, bottom-left, bottom-right, centre."""
    h, w = crop_size(height), crop_size(width)
    bottom, right = height - h, width - w
    corners = [(0, 0), (0, right), (bottom, 0), (bottom, right)]
    return [
        (top, left, h, w) for top, left in (*corners, (bottom // 2, right // 2))
    ]


def _static_size(shape, argument: str = "images") -> tuple[int, int]:
    """`(H, W)` of a `[batch, H, W, C]` shape; ValueError when unknown."""
    shape = tuple(shape)
    if len(shape) != 4 or shape[1] is None or shape[2] is None:
        raise ValueError(
            f"Invalid value for argument `{argument}`: test-time ensembling "
            "needs images [batch, H, W, C] of a known H and W. Received: "
            f"shape={shape}"
        )
    return int(shape[1]), int(shape[2])


def views(images, tta: str) -> list:
    """The views of `images` `[B, H, W, C]` whose logits `tta` averages."""
    check_tta(tta)
    if tta == "none":
        return [images]
    if tta == "flip":
        return [images, ops.flip(images, axis=2)]
    height, width = _static_size(images.shape)
    out = []
    for top, left, h, w in crop_boxes(height, width):
        crop = images[:, top : top + h, left : left + w, :]
        out.append(
            ops.image.resize(
                crop,
                (height, width),
                interpolation="bilinear",
                antialias=False,
                data_format="channels_last",
            )
        )
    return out


def ensemble_logits(model, images, tta: str):
    """The float32 logits of `model` on `images`, averaged over `tta`'s
    views (`views`); the model runs in inference mode, one view at a time
    (the memory of one batch)."""
    total = None
    parts = views(images, tta)
    for view in parts:
        logits = ops.cast(model(view, training=False), "float32")
        total = logits if total is None else total + logits
    if len(parts) == 1:
        return total
    return total / float(len(parts))


class TestTimeEnsemble(keras.layers.Layer):
    """`ensemble_logits(model, images, tta)` as a layer (float32 policy:
    the views are cut and resized in float32 under any global policy).

    Args:
        model: a Keras model mapping normalised images to logits.
        tta: one of `MODES`.
    """

    def __init__(self, model, tta: str, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        self.model = model
        self.tta = check_tta(tta)

    def call(self, images):
        return ensemble_logits(self.model, images, self.tta)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.model.output_shape[-1])


def ensemble_model(model, tta: str):
    """A Keras model of `model`'s inputs and variables that returns its
    logits averaged over `tta`'s views; `model` itself for "none".

    Raises:
        ValueError: an unknown `tta`, or a model of an unknown image size.
    """
    if check_tta(tta) == "none":
        return model
    shape = tuple(model.input_shape)
    _static_size(shape, "model")
    inputs = keras.Input(shape=shape[1:], name="images")
    layer = TestTimeEnsemble(model, tta, name=f"tta_{tta}")
    return keras.Model(inputs, layer(inputs), name=f"{model.name}_tta_{tta}")
