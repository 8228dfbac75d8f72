"""The official release's training loop, timed (bench_train, bench_backends).

The loop style of google-research `logit_adjustment` (`main.py`, `utils.py`):
an eager `tf.GradientTape` step over
`TFRecordDataset.shuffle(10000).batch(128).map(parse + tf.map_fn)`, on the
official-format TFRecord written from the given images, the loss read
every step (the official loop prints it).
"""

from __future__ import annotations

import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from la_keras.datasets import official
from la_keras.models import official_resnet32


def _official_parse(serialized, training=True):
    # The official utils._parse / _process_image, verbatim in behaviour.
    features = tf.io.parse_example(
        serialized,
        {
            "image/encoded": tf.io.FixedLenFeature((), tf.string),
            "image/class/label": tf.io.FixedLenFeature((), tf.int64),
        },
    )

    def process(record):
        image = tf.io.decode_raw(record, tf.uint8)
        image = tf.reshape(tf.cast(image, tf.float32), [32, 32, 3])
        image = image * (1.0 / 255) - 0.5
        if training:
            image = tf.image.resize_with_crop_or_pad(image, 36, 36)
            image = tf.image.random_crop(image, [32, 32, 3])
            image = tf.image.random_flip_left_right(image)
        return image

    images = tf.map_fn(process, features["image/encoded"], dtype=tf.float32)
    return images, features["image/class/label"]


def images_per_second(images, labels, priors, steps, warmup, batch=128):
    """images/s of the official eager loop on uint8 `images` and `labels`."""
    path = os.path.join(tempfile.mkdtemp(), "cifar10-lt_train.tfrecord")
    official.write_tfrecord(path, np.stack(images), np.array(labels))
    train = (
        tf.data.TFRecordDataset(path)
        .shuffle(10000)
        .batch(batch, drop_remainder=True)
        .map(_official_parse)
        .prefetch(tf.data.AUTOTUNE)
        .repeat()
    )
    keras.utils.set_random_seed(0)
    model = official_resnet32(len(priors))
    optimizer = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
    adjustment = tf.math.log(
        tf.cast(np.asarray(priors) ** 1.0 + 1e-12, tf.float32)
    )

    def loss_fn(labels, logits):
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=labels, logits=logits + adjustment
        )
        return tf.reduce_mean(loss, axis=0)

    iterator = iter(train)
    start = None
    for step in range(warmup + steps):
        if step == warmup:
            start = time.perf_counter()
        x, y = next(iterator)
        with tf.GradientTape() as tape:
            logits = model(x, training=True)
            loss = loss_fn(y, logits) + tf.reduce_sum(model.losses)
        grads = tape.gradient(loss, model.trainable_weights)
        optimizer.apply_gradients(
            zip(grads, model.trainable_weights, strict=True)
        )
        float(loss)  # the official loop reads the loss every step to print it
    return steps * batch / (time.perf_counter() - start)
