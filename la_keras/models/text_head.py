"""The head of a CLIP preset started from its text features
(`--head_init=text`).

LIFT (Shi et al., ICML 2024) starts the classifier of a CLIP backbone from
the text encoder's features of the prompts "a photo of a {class name}.".
The head of a `hub:<CLIP preset>` model (`la_keras.models.hub`) reads the
vision encoder's pooled output, before CLIP's vision projection `P`
(`[D, E]`), as LIFT's CLIP-ViT does; so, as LIFT's `init_head_text_feat`,
each class's normalised text embedding `t` (text encoder, then text
projection) is mapped back through `P`: the class's kernel column is
`P t / |P t|`. The head's logit of an image feature `f` is then `(f P) . t /
|P t|`: CLIP's image-text similarity, each class scaled by `1 / |P t|`.
"""

from __future__ import annotations

import re

import keras
import numpy as np

from la_keras.models import finetune
from la_keras.models import hub
from la_keras.models.pretrained_weights import _first_line

TEMPLATE = "a photo of a {}."
# Names that are label numbers only ("3", "class_3"): no text to encode.
_NUMBERED = re.compile(r"(class)?[\s_-]*\d+", re.IGNORECASE)
# Prompts encoded at a time.
_BATCH = 256


def check_class_names(class_names) -> list[str]:
    """`class_names` as strings; ValueError where they are label numbers
    only (a TFDS label without names, the synthetic `class_<i>`)."""
    names = [str(name).strip() for name in class_names]
    if not names or all(not n or _NUMBERED.fullmatch(n) for n in names):
        shown = ", ".join(repr(n) for n in names[:3])
        raise ValueError(
            "Invalid value for argument `class_names`: the text head encodes "
            "each class's name, and these classes have none but their "
            f"numbers ({shown}{', ...' if len(names) > 3 else ''}). Use a "
            "dataset with class names (a folder dataset's folder names)."
        )
    return names


def prompts(class_names, template: str = TEMPLATE) -> list[str]:
    """`template` filled with each class name, underscores as spaces."""
    return [template.format(name.replace("_", " ")) for name in class_names]


def _clip(preset: str):
    """The preset's CLIPBackbone with its weights, in float32."""
    loader = hub._loader(preset)
    cls = loader.check_backbone_class()
    if cls.__name__ != "CLIPBackbone":
        raise ValueError(
            f"Invalid value for argument `preset`: {preset!r} is a "
            f"{cls.__name__}, which has no CLIP text encoder; the text head "
            "needs a CLIP preset."
        )
    try:
        return loader.load_backbone(cls, True, dtype="float32")
    except OSError as e:
        raise ValueError(
            f"The weights of KerasHub preset {preset!r} cannot be read or "
            f"downloaded ({_first_line(e)})."
        ) from None


def _token_ids(preset: str, texts, sequence_length: int) -> np.ndarray:
    """`texts` tokenised by the preset's CLIP preprocessor: start and end
    tokens, padded to `sequence_length`."""
    keras_hub = hub.import_keras_hub()
    try:
        preprocessor = keras_hub.models.CLIPPreprocessor.from_preset(
            hub._where(preset), sequence_length=sequence_length
        )
    except (OSError, ValueError, KeyError) as e:  # no tokenizer.json
        raise ValueError(
            f"KerasHub preset {preset!r} has no CLIP tokenizer "
            f"({_first_line(e)}); save it with CLIPTokenizer.save_to_preset "
            "beside the backbone."
        ) from None
    packed = preprocessor({"prompts": list(texts), "images": None})
    return np.asarray(packed["token_ids"])


def text_features(
    preset: str, class_names, template: str = TEMPLATE
) -> tuple[np.ndarray, np.ndarray]:
    """The normalised text embeddings of the classes' prompts.

    Returns:
        `(features, projection)`: float64 `[C, E]` unit rows (text encoder,
        text projection) and the vision projection's float64 `[D, E]`
        kernel.
    """
    clip = _clip(preset)
    texts = prompts(check_class_names(class_names), template)
    ids = _token_ids(preset, texts, clip.text_encoder.max_sequence_length)
    features = np.concatenate(
        [
            keras.ops.convert_to_numpy(
                clip.get_text_embeddings(ids[i : i + _BATCH])
            )
            for i in range(0, len(ids), _BATCH)
        ]
    ).astype(np.float64)
    features /= np.maximum(
        np.linalg.norm(features, axis=1, keepdims=True), 1e-12
    )
    projection = keras.ops.convert_to_numpy(clip.vision_projection.kernel)
    return features, projection.astype(np.float64)


def text_head(
    model: keras.Model, preset: str, class_names, template: str = TEMPLATE
) -> np.ndarray:
    """Initialises the head of `model` (a `hub:<preset>` model of a CLIP
    preset) from the text features of `template` for each class name: its
    kernel columns `P t / |P t|` (see the module's docstring), its bias (if
    any) zero.

    Returns:
        The `[D, num_classes]` kernel set.

    Raises:
        ImportError: keras-hub is not installed.
        ValueError: a preset that is not CLIP or has no tokenizer, names
            that are label numbers only, a number of names other than the
            head's classes, or a head whose features are not the preset's
            vision encoder's.
    """
    dim, num_classes = (int(d) for d in finetune.head_kernel(model).shape)
    if len(class_names) != num_classes:
        raise ValueError(
            f"Invalid value for argument `class_names`: the head has "
            f"{num_classes} classes. Received {len(class_names)} names."
        )
    features, projection = text_features(preset, class_names, template)
    if projection.shape[0] != dim:
        raise ValueError(
            f"The head of {model.name!r} takes {dim}-dimensional features; "
            f"the vision encoder of KerasHub preset {preset!r} gives "
            f"{projection.shape[0]}. Build the model with --model=hub:{preset}."
        )
    kernel = projection @ features.T
    kernel /= np.maximum(np.linalg.norm(kernel, axis=0, keepdims=True), 1e-12)
    finetune.set_head(model, kernel)
    return kernel
