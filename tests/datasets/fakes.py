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
def balanced_tfds(per_class, last_label=None):
    """Mocks TFDS with `per_class[split]` examples of each class per split.

    `last_label[split]`, when given, replaces the label of the split's last
    example (e.g. an out-of-range `num_classes`).
    """
    last_label = last_label or {}

    def as_dataset(self, split, decoders=None, read_config=None, **kwargs):
        del read_config, kwargs
        features = self.info.features
        num_classes = features["label"].num_classes
        count = per_class[str(split)] * num_classes
        last = last_label.get(str(split))
        labels = tf.data.Dataset.range(count).map(
            lambda i: (
                i % num_classes
                if last is None
                else tf.where(
                    i == count - 1, tf.constant(last, tf.int64), i % num_classes
                )
            )
        )
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


# The record counts of the small official-format files of `official_dir`.
OFFICIAL_SIZES = {"train": 8, "test": 10}
OFFICIAL_TRAIN_LABELS = (0, 1, 0, 2, 0, 9, 1, 0)


def official_images(n, seed):
    """`n` random uint8 32x32x3 images drawn from `default_rng(seed)`."""
    return np.random.default_rng(seed).integers(
        0, 256, [n, 32, 32, 3], dtype=np.uint8
    )


def dataset_info(train_counts, **fields):
    """A `DatasetInfo` of the class counts `train_counts` (a list): priors
    in proportion, classes named "a", "b", ...; `fields` (name,
    image_shape, num_examples, preprocessing) default to a 4x4 RGB set."""
    from la_keras.datasets import DatasetInfo

    values = dict(
        name="x",
        class_names=[chr(ord("a") + c) for c in range(len(train_counts))],
        image_shape=(4, 4, 3),
        num_examples={},
        preprocessing="cifar",
    )
    values.update(fields)
    return DatasetInfo(
        num_classes=len(train_counts),
        train_counts=train_counts,
        priors=[c / sum(train_counts) for c in train_counts],
        **values,
    )
