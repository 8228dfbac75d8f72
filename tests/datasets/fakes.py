"""Fake TFDS data with exact, balanced labels, for `tfds.testing.mock_data`.

`tfds.testing.mock_data(num_examples=...)` draws random labels; the tests of
exact long-tail counts need a balanced source instead. Label `i % C` at
position `i`; every image of class `c` is filled with the value `c % 256`.
Decoders are honoured as TFDS does: `PartialDecoding` yields only the label,
`SkipDecoding` on the image yields PNG bytes.
"""

import contextlib

import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

# Size of fake images when the real feature has a variable size.
VARIABLE_SIZE = (30, 40)


def _image_shape(feature):
    shape = list(feature.shape)
    if shape[0] is None:
        shape[:2] = VARIABLE_SIZE
    return shape


@contextlib.contextmanager
def balanced_tfds(per_class):
    """Mocks TFDS with `per_class[split]` examples of each class per split."""

    def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
        del read_config, kwargs
        features = self.info.features
        num_classes = features["label"].num_classes
        count = per_class[str(split)] * num_classes
        labels = tf.data.Dataset.range(count).map(lambda i: i % num_classes)
        if isinstance(decoders, tfds.decode.PartialDecoding):
            return labels.map(lambda label: {"label": label})
        shape = _image_shape(features["image"])
        images = np.arange(256, dtype=np.uint8)[:, None, None, None]
        images = np.broadcast_to(images, [256, *shape])
        if decoders and "image" in decoders:
            encoded = tf.stack([tf.io.encode_png(im) for im in images])
            images = encoded
        images = tf.constant(images)
        return labels.map(
            lambda label: {"image": images[label % 256], "label": label}
        )

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        yield
