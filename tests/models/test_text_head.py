"""`--head_init=text`: the head of a CLIP preset from its text features.

A tiny random CLIP preset is saved here with its image converter and a
tokenizer whose vocabulary is the byte-level letters (each also as a word's
last token, `x</w>`), ".", one merge and the start and end tokens (the end
token the largest id, as CLIP's text pooling takes the argmax of the ids).
"""

import os
import shutil
import string
import tempfile

import keras
import numpy as np
import pytest
from absl import app
from absl import flags
from absl.testing import flagsaver

from la_keras.models import finetune
from la_keras.models import registry
from la_keras.models import text_head
from la_keras.runs import finetuning
from la_keras.runs.errors import RunError
from la_keras.runs.resolved import ResolvedConfig
from tests.launch import helpers
from tests.launch.test_folder_runs import CLASSES
from tests.launch.test_folder_runs import folder_flags
from tests.launch.test_folder_runs import make_gray_folder
from tests.launch.test_folder_runs import train_on_folder
from tests.numerics import assert_float32_close
from tests.test_case import TestCase

keras_hub = pytest.importorskip(
    "keras_hub", reason='keras-hub is not installed (pip install ".[hub]")'
)

NAMES = ["cat", "dog", "golden_retriever"]
SEQUENCE_LENGTH = 32


def save_clip(root):
    """A tiny CLIP preset with its tokenizer under `root`; and a ViT
    preset (no text encoder, 12-dimensional features) and the CLIP one
    without its tokenizer."""
    keras.utils.set_random_seed(11)
    letters = list(string.ascii_lowercase) + ["."]
    vocabulary = letters + [c + "</w>" for c in letters] + ["of</w>"]
    vocabulary += ["<|startoftext|>", "<|endoftext|>"]
    vocabulary = {token: i for i, token in enumerate(vocabulary)}
    tiny = dict(hidden_dim=16, num_layers=1, num_heads=2, intermediate_dim=32)
    paths = {n: os.path.join(root, n) for n in ("clip", "vit", "no_tokenizer")}
    keras_hub.models.CLIPBackbone(
        keras_hub.models.CLIPVisionEncoder(
            patch_size=8, image_shape=(32, 32, 3), **tiny
        ),
        keras_hub.models.CLIPTextEncoder(
            vocabulary_size=len(vocabulary),
            embedding_dim=16,
            max_sequence_length=SEQUENCE_LENGTH,
            **tiny,
        ),
        projection_dim=8,
    ).save_to_preset(paths["clip"])
    keras_hub.layers.CLIPImageConverter(
        image_size=(32, 32), scale=1 / 255.0
    ).save_to_preset(paths["clip"])
    shutil.copytree(paths["clip"], paths["no_tokenizer"])
    keras_hub.models.CLIPTokenizer(
        vocabulary=vocabulary, merges=["o f</w>"]
    ).save_to_preset(paths["clip"])
    keras_hub.models.ViTBackbone(
        image_shape=(32, 32, 3), patch_size=8, num_layers=1, num_heads=2,
        hidden_dim=12, mlp_dim=24,
    ).save_to_preset(paths["vit"])  # fmt: skip
    keras_hub.layers.ViTImageConverter(
        image_size=(32, 32), scale=1 / 127.5, offset=-1.0
    ).save_to_preset(paths["vit"])
    return paths


def loaded(preset, num_classes=3, classifier="dense"):
    model = registry.build(
        "hub:" + preset, num_classes, (32, 32, 3), 5e-4, classifier,
        pretrained=True,
    )  # fmt: skip
    registry.load_pretrained(model, "hub:" + preset, "preset")
    return model


def expected_kernel(preset, names):
    """The head's kernel, in float64 from the saved preset's layers: the
    prompts tokenised and packed here, the text encoder's output at the end
    token, the text projection, normalised, mapped back through the vision
    projection, normalised."""
    clip = keras_hub.models.Backbone.from_preset(preset)
    tokenizer = keras_hub.models.CLIPTokenizer.from_preset(preset)
    ids = np.zeros((len(names), SEQUENCE_LENGTH), np.int32)
    for row, name in enumerate(names):
        words = tokenizer(f"a photo of a {name.replace('_', ' ')}.")
        tokens = [tokenizer.start_token_id, *np.asarray(words).tolist()]
        tokens.append(tokenizer.end_token_id)
        ids[row, : len(tokens)] = tokens
    ends = ids.argmax(axis=1)
    sequence = np.asarray(clip.text_encoder({"token_ids": ids}), np.float64)
    pooled = sequence[np.arange(len(names)), ends]
    text = pooled @ np.asarray(clip.text_projection.kernel, np.float64)
    text /= np.linalg.norm(text, axis=1, keepdims=True)
    kernel = np.asarray(clip.vision_projection.kernel, np.float64) @ text.T
    return kernel / np.linalg.norm(kernel, axis=0, keepdims=True)


class TextHeadTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.presets = save_clip(cls.root)
        cls.expected = expected_kernel(cls.presets["clip"], NAMES)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def test_kernel_is_the_back_projected_text_features(self):
        preset = self.presets["clip"]
        model = loaded(preset)
        kernel = text_head.text_head(model, preset, NAMES)
        self.assertEqual(kernel.shape, (16, len(NAMES)))  # [D, C]
        assert_float32_close(kernel, self.expected, "returned kernel")
        head = model.get_layer("logits")
        assert_float32_close(head.kernel.numpy(), self.expected, "kernel")
        np.testing.assert_array_equal(head.bias.numpy(), 0.0)
        # The logits are CLIP's image-text similarities (f P) . t, each
        # class scaled by 1 / |P t|.
        images = np.random.default_rng(0).uniform(-0.5, 0.5, (2, 32, 32, 3))
        images = images.astype("float32")
        features = finetune.head_features_model(model)(images)
        features = np.asarray(features, np.float64)
        clip = keras_hub.models.Backbone.from_preset(preset)
        projection = np.asarray(clip.vision_projection.kernel, np.float64)
        text = np.linalg.pinv(projection) @ self.expected  # t / |P t|
        assert_float32_close(
            model(images), (features @ projection) @ text, "logits"
        )

    def test_the_cosine_head_takes_it_too(self):
        preset = self.presets["clip"]
        model = loaded(preset, classifier="normed")
        text_head.text_head(model, preset, NAMES)
        kernel = model.get_layer("logits").kernel.numpy()
        assert_float32_close(kernel, self.expected, "normed kernel")

    def test_permuted_names_permute_the_columns(self):
        preset = self.presets["clip"]
        order = [2, 0, 1]
        kernel = text_head.text_head(
            loaded(preset), preset, [NAMES[i] for i in order]
        )
        assert_float32_close(kernel, self.expected[:, order], "permuted")
        # Another name, another column.
        other = text_head.text_head(
            loaded(preset), preset, ["cat", "dog", "ox"]
        )
        assert_float32_close(other[:, :2], self.expected[:, :2], "kept")
        self.assertGreater(
            np.abs(other[:, 2] - self.expected[:, 2]).max(), 1e-3
        )

    def test_errors_are_one_line(self):
        clip, vit = self.presets["clip"], self.presets["vit"]
        cases = [
            (clip, loaded(clip, 2), NAMES, "the head has 2 classes"),
            (clip, loaded(clip), ["0", "1", "2"], "none but their numbers"),
            (clip, loaded(clip), ["class_0", "class_1", "class_2"], "numbers"),
            (vit, loaded(vit), NAMES, "ViTBackbone, which has no CLIP text"),
            (clip, loaded(vit), NAMES, "takes 12-dimensional features; the"),
            (self.presets["no_tokenizer"], loaded(clip), NAMES, "no CLIP tok"),
        ]
        for preset, model, names, message in cases:
            with self.assertRaisesRegex(ValueError, message) as raised:
                text_head.text_head(model, preset, names)
            self.assertNotIn("\n", str(raised.exception))


class TextHeadRunTest(TestCase):
    """`--head_init=text` through a run's model on a folder dataset."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        helpers.define_all_flags()
        cls.root = tempfile.mkdtemp()
        cls.presets = save_clip(cls.root)
        cls.data = make_gray_folder(os.path.join(cls.root, "gray"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def _config(self, **overrides):
        values = dict(
            model="hub:" + self.presets["clip"], image_size="32",
            head_init="text", finetune="linear",
        )  # fmt: skip
        values.update(overrides)
        values = folder_flags(
            self.data, os.path.join(self.root, "run"), **values
        )
        with flagsaver.flagsaver(**values):
            return ResolvedConfig.from_flags(flags.FLAGS)

    def test_a_new_run_starts_from_the_folders_class_names(self):
        config = self._config()
        info = config.data.info()
        self.assertEqual(info.class_names, list(CLASSES))
        model = finetuning.build_model(config, info, fresh=True)
        expected = expected_kernel(self.presets["clip"], list(CLASSES))
        kernel = model.get_layer("logits").kernel.numpy()
        assert_float32_close(kernel, expected, "run kernel")

    @pytest.mark.slow
    def test_launch_train_runs_with_it(self):
        model_dir = os.path.join(self.root, "trained")
        metrics = train_on_folder(
            self.data, model_dir, model="hub:" + self.presets["clip"],
            image_size="32", head_init="text", finetune="linear",
        )  # fmt: skip
        self.assertEqual(metrics["class_names"], list(CLASSES))
        self.assertEqual(ResolvedConfig.read(model_dir).head_init, "text")

    def test_refusals_are_one_line(self):
        with self.assertRaisesRegex(
            app.UsageError, r"--head_init=text .* not --model=mobilenet\.$"
        ):
            self._config(model="mobilenet", pretrained="w.h5")
        config = self._config(model="hub:" + self.presets["vit"])
        with self.assertRaisesRegex(
            RunError, r"--head_init=text on --dataset=folder:.*ViTBackbone"
        ) as raised:
            finetuning.build_model(config, config.data.info(), fresh=True)
        self.assertNotIn("\n", str(raised.exception))
