"""Tests for `load_backbone_weights`: Keras Applications' `.h5` files and
Keras 3 `.weights.h5` files, and the one-line refusals of a file that does
not fit.

The real file is the shared ImageNet MobileNet (alpha 0.25, no top) beside
the checkout; where it is absent, a randomly initialised MobileNet saved in
the same legacy HDF5 layout stands in for it.
"""

import os
import shutil
import tempfile
import warnings

import h5py
import keras
import numpy as np
from keras.src.legacy.saving import legacy_h5_format

from la_keras.models import registry
from la_keras.models.pretrained_weights import load_backbone_weights
from tests.test_case import TestCase

_REPO = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
SHARED_FILE = os.path.join(
    _REPO, "..", "shared", "pretrained", "mobilenet_2_5_224_tf_no_top.h5"
)
SIZE = 32


def mobilenet(alpha=0.25, include_top=False, weights=None, **kwargs):
    """A Keras Applications MobileNet at 32x32."""
    return keras.applications.MobileNet(
        input_shape=(SIZE, SIZE, 3),
        alpha=alpha,
        include_top=include_top,
        weights=weights,
        **kwargs,
    )


def save_legacy(model, path):
    """Saves `model`'s weights as Keras Applications publishes them: HDF5
    with the attributes `layer_names` and, per layer, `weight_names`."""
    with h5py.File(path, "w") as handle:
        legacy_h5_format.save_weights_to_hdf5_group(handle, model)
    return path


def weights_of(model):
    return [np.array(w) for w in model.get_weights()]


class LoadBackboneWeightsTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        if os.path.isfile(SHARED_FILE):
            cls.path = os.path.abspath(SHARED_FILE)
        else:
            keras.utils.set_random_seed(7)
            cls.path = save_legacy(
                mobilenet(), os.path.join(cls.tmp, "mobilenet_0.25.h5")
            )
        # Built once (a MobileNet takes ~0.5 s): what Keras loads, the
        # model every refusal leaves unchanged, and one of width 0.5.
        cls.expected = mobilenet(weights=cls.path, pooling="avg")
        cls.target = mobilenet()
        cls.wider = mobilenet(alpha=0.5)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def assert_refused(self, model, path, *fragments, error=ValueError):
        """`path` into `model` raises `error`, one line naming the file and
        `fragments`; the model's weights are as they were."""
        before = weights_of(model)
        with warnings.catch_warnings(record=True) as noted:
            warnings.simplefilter("always")
            with self.assertRaises(error) as caught:
                load_backbone_weights(model, path, "--model=mobilenet")
        # Nothing but the error (Keras warned once per skipped layer).
        self.assertEqual(
            [str(n.message) for n in noted if n.category is UserWarning], []
        )
        message = str(caught.exception)
        self.assertNotIn("\n", message)
        self.assertIn(path, message)
        for fragment in fragments:
            self.assertIn(fragment, message)
        after = weights_of(model)
        self.assertLen(after, len(before))
        for old, new in zip(before, after, strict=True):
            np.testing.assert_array_equal(new, old)
        return message

    def test_loads_what_keras_applications_loads(self):
        expected = self.expected
        backbone = mobilenet(pooling="avg")
        # Random before: the load has something to do.
        self.assertFalse(
            all(
                np.array_equal(a, b)
                for a, b in zip(
                    weights_of(backbone), weights_of(expected), strict=True
                )
            )
        )
        load_backbone_weights(backbone, self.path)
        for ours, theirs in zip(
            backbone.weights, expected.weights, strict=True
        ):
            self.assertEqual(ours.path, theirs.path)
            np.testing.assert_array_equal(np.array(ours), np.array(theirs))
        images = np.random.default_rng(0).uniform(-1, 1, (2, SIZE, SIZE, 3))
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(backbone(images, training=False)),
            keras.ops.convert_to_numpy(expected(images, training=False)),
        )

    def test_registry_model_loads_into_its_backbone(self):
        model = registry.build(
            "mobilenet",
            10,
            (SIZE, SIZE, 3),
            0.0,
            pretrained=True,
            image_size=(SIZE, SIZE),
            width=0.25,
        )
        head = weights_of(model.get_layer("logits"))
        registry.load_pretrained(model, "mobilenet", self.path, 0.25)
        for ours, theirs in zip(
            weights_of(model.get_layer("backbone")),
            weights_of(self.expected),
            strict=True,
        ):
            np.testing.assert_array_equal(ours, theirs)
        for old, new in zip(
            head, weights_of(model.get_layer("logits")), strict=True
        ):
            np.testing.assert_array_equal(new, old)

    def test_keras3_weights_file_round_trip(self):
        path = os.path.join(self.tmp, "round_trip.weights.h5")
        self.expected.save_weights(path)
        target = mobilenet(pooling="avg")
        load_backbone_weights(target, path)
        for ours, theirs in zip(
            weights_of(target), weights_of(self.expected), strict=True
        ):
            np.testing.assert_array_equal(ours, theirs)

    def test_file_of_another_width(self):
        # The 0.25 file into a 0.5 model: the first layer differs.
        self.assert_refused(self.wider, self.path, "'conv1'")
        # A 0.5 file into the 0.25 model, in either format.
        legacy = save_legacy(self.wider, os.path.join(self.tmp, "w0.5.h5"))
        self.assert_refused(self.target, legacy, "'conv1'", "--model_width")
        keras3 = os.path.join(self.tmp, "w0.5.weights.h5")
        self.wider.save_weights(keras3)
        self.assert_refused(self.target, keras3, "conv1")

    def test_file_of_another_architecture(self):
        v2 = keras.applications.MobileNetV2(
            input_shape=(SIZE, SIZE, 3),
            alpha=0.35,
            include_top=False,
            weights=None,
        )
        # MobileNetV2's first layer is "Conv1" (16 filters; v1 0.25 has 8).
        self.assert_refused(v2, self.path, "'Conv1'")
        v2_file = save_legacy(v2, os.path.join(self.tmp, "v2.h5"))
        self.assert_refused(self.target, v2_file, "'conv1'")

    def test_file_with_more_or_fewer_layers(self):
        # The file of the model with its top: one layer the backbone lacks.
        with_top = save_legacy(
            mobilenet(include_top=True, classes=5),
            os.path.join(self.tmp, "with_top.h5"),
        )
        self.assert_refused(self.target, with_top, "'conv_preds'")
        # A file that stops early: the first layer it lacks is named.
        short = os.path.join(self.tmp, "short.h5")
        shutil.copyfile(self.path, short)
        with h5py.File(short, "r+") as handle:
            names = list(handle.attrs["layer_names"])
            cut = [n.decode() if isinstance(n, bytes) else n for n in names]
            handle.attrs["layer_names"] = names[: cut.index("conv_pw_1")]
        self.assert_refused(self.target, short, "'conv_pw_1'")

    def test_truncated_file(self):
        truncated = os.path.join(self.tmp, "truncated.h5")
        with open(self.path, "rb") as source:
            data = source.read()
        with open(truncated, "wb") as target:
            target.write(data[: len(data) // 2])
        self.assert_refused(self.target, truncated, "truncated or corrupt")

    def test_missing_file(self):
        missing = os.path.join(self.tmp, "no_such_file.h5")
        self.assert_refused(
            self.target, missing, "not found", error=FileNotFoundError
        )

    def test_not_a_weights_file(self):
        text = os.path.join(self.tmp, "notes.h5")
        with open(text, "w") as handle:
            handle.write("these are not weights\n" * 100)
        self.assert_refused(self.target, text, "cannot be read as HDF5")
        # HDF5, but neither a Keras Applications nor a Keras 3 file.
        other = os.path.join(self.tmp, "other.h5")
        with h5py.File(other, "w") as handle:
            handle["data"] = np.zeros(3)
        self.assert_refused(self.target, other, "does not fit")
