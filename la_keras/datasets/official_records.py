"""The record format of the official release's TFRecord files, and its checks.

Each record is a `tf.train.Example` with `image/encoded` (the raw bytes of a
uint8 32x32x3 image, not PNG) and `image/class/label` (int64). Records are
parsed a batch at a time (`parse_example` + `decode_raw` on the batch).

`check_records` reads a whole file once and refuses what `TFRecordDataset`
lets through: it stops without an error at a record cut off by a truncated
copy and ignores a few trailing bytes, and `decode_raw` fails only when the
bad record's batch comes up in training.
"""

from __future__ import annotations

import re

import numpy as np
import tensorflow as tf
from google.protobuf import message as message_lib

from la_keras.datasets import arguments

IMAGE_KEY = "image/encoded"
LABEL_KEY = "image/class/label"
IMAGE_SHAPE = (32, 32, 3)
FEATURES = {
    IMAGE_KEY: tf.io.FixedLenFeature([], tf.string),
    LABEL_KEY: tf.io.FixedLenFeature([], tf.int64),
}
_PARSE_BATCH = 1024
# Bytes of a TFRecord record besides its data: the length and two CRCs.
_RECORD_OVERHEAD = 16


def write_tfrecord(path: str, images, labels) -> None:
    """Writes images and labels in the official format.

    Args:
        path: output file.
        images: uint8 array `[N, 32, 32, 3]`.
        labels: int array `[N]`.
    """
    images = arguments.uint8_images(images, IMAGE_SHAPE, "images")
    with tf.io.TFRecordWriter(path) as writer:
        for image, label in zip(images, np.asarray(labels), strict=True):
            example = tf.train.Example(
                features=tf.train.Features(
                    feature={
                        IMAGE_KEY: tf.train.Feature(
                            bytes_list=tf.train.BytesList(
                                value=[image.tobytes()]
                            )
                        ),
                        LABEL_KEY: tf.train.Feature(
                            int64_list=tf.train.Int64List(value=[int(label)])
                        ),
                    }
                )
            )
            writer.write(example.SerializeToString())


def parse_batch(serialized):
    """Parses a batch of serialized records into uint8 images and labels."""
    parsed = tf.io.parse_example(serialized, FEATURES)
    images = tf.io.decode_raw(parsed[IMAGE_KEY], tf.uint8)
    images = tf.reshape(images, (-1, *IMAGE_SHAPE))
    return images, parsed[LABEL_KEY]


def read_records(path: str) -> tf.data.Dataset:
    """(uint8 image, int64 label) pairs of an official file, in file order."""
    ds = tf.data.TFRecordDataset(path).batch(_PARSE_BATCH)
    return ds.map(parse_batch).unbatch()


def describe_record(serialized: bytes) -> str | None:
    """What is wrong with one serialized record, or None if it is valid."""
    size = int(np.prod(IMAGE_SHAPE))
    expected = (
        f"expected features '{IMAGE_KEY}' (raw uint8 32x32x3 bytes, {size} "
        f"bytes, not PNG) and '{LABEL_KEY}' (int64)"
    )
    try:
        example = tf.train.Example.FromString(serialized)
    except message_lib.DecodeError as e:
        return f"not a tf.train.Example ({e}); {expected}"
    feature = example.features.feature
    image = feature.get(IMAGE_KEY)
    label = feature.get(LABEL_KEY)
    ok = (
        image is not None
        and label is not None
        and len(image.bytes_list.value) == 1
        and len(label.int64_list.value) == 1
        and len(image.bytes_list.value[0]) == size
    )
    if ok:
        return None
    found = {
        k: f"{len(v.bytes_list.value[0])} bytes"
        if v.bytes_list.value
        else v.WhichOneof("kind")
        for k, v in feature.items()
    }
    return (
        f"{expected}. Found: {found}. Write files in this format with "
        "`la_keras.datasets.official.write_tfrecord`"
    )


def _check_batch(batch, num_classes):
    """`(labels, None)` of a valid batch, else `(None, (index, problem))`.

    The problem is that of the batch's first invalid record.
    """
    try:
        parsed = tf.io.parse_example(batch, FEATURES)
    except tf.errors.InvalidArgumentError as e:
        parsed, error = None, e.message.splitlines()[0]
    except UnicodeDecodeError as e:
        # Eager TF fails so when its message quotes a record's bytes.
        parsed, error = None, str(e)
    if parsed is None:
        bad = np.arange(int(batch.shape[0]))
    else:
        lengths = tf.strings.length(parsed[IMAGE_KEY]).numpy()
        bad = np.flatnonzero(lengths != int(np.prod(IMAGE_SHAPE)))
    records = batch.numpy()
    for index in bad:
        problem = describe_record(records[index])
        if problem is not None:
            return None, (int(index), f"does not parse: {problem}")
    if parsed is None:
        return None, (0, f"or a later one of its batch does not parse: {error}")
    labels = parsed[LABEL_KEY].numpy()
    out = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if out.size:
        index = int(out[0])
        return None, (
            index,
            f"has label {labels[index]}, out of range [0, {num_classes})",
        )
    return labels, None


def _cut_off(path: str, offset: int, index: int) -> str:
    """Describes record `index` at `offset`, cut off by a truncated copy."""
    left = tf.io.gfile.stat(path).length - offset
    with tf.io.gfile.GFile(path, "rb") as f:
        f.seek(offset)
        length = int.from_bytes(f.read(8), "little") + _RECORD_OVERHEAD
    return (
        f"it is truncated: record {index} is cut off after {left} of its "
        f"{length} bytes"
    )


def _readable_prefix(path: str) -> tuple[int, int]:
    """Records and bytes of a damaged file read before the data loss."""
    count, offset = 0, 0
    try:
        for record in tf.data.TFRecordDataset(path):
            count += 1
            offset += len(record.numpy()) + _RECORD_OVERHEAD
    except tf.errors.DataLossError:
        pass
    return count, offset


def check_records(
    path: str, num_classes: int, expected: int | None, where: str
) -> np.ndarray:
    """Reads every record of an existing file and returns its labels.

    Args:
        path: the TFRecord file.
        num_classes: labels must lie in `[0, num_classes)`.
        expected: the number of records the file must hold, or None for any.
        where: the start of the error messages, naming the file.

    Returns:
        The int64 labels of the records, in file order.

    Raises:
        ValueError: for a file that is truncated or holds bytes that are no
            record, a record that does not parse (image bytes of the wrong
            size, PNG, wrong features), a label out of range, or a count
            other than `expected`.
    """
    labels, count, offset = [], 0, 0
    try:
        for batch in tf.data.TFRecordDataset(path).batch(_PARSE_BATCH):
            batch_labels, bad = _check_batch(batch, num_classes)
            if bad is not None:
                raise ValueError(f"{where}: record {count + bad[0]} {bad[1]}.")
            labels.append(batch_labels)
            count += int(batch.shape[0])
            lengths = tf.strings.length(batch) + _RECORD_OVERHEAD
            offset += int(tf.reduce_sum(tf.cast(lengths, tf.int64)))
    except tf.errors.DataLossError as e:
        count, offset = _readable_prefix(path)
        # Keep "corrupted record at <byte offset>", not the op's name.
        reason = re.sub(r"\{\{.*?\}\}|\[Op:.*", "", e.message).strip()
        if "truncated record" in reason:
            problem = _cut_off(path, offset, count)
        else:
            problem = f"record {count} is corrupt ({reason})"
        raise ValueError(
            f"{where}: {problem} ({count} whole records). The file is "
            "damaged: copy it again."
        ) from None
    left = tf.io.gfile.stat(path).length - offset
    if left:
        # Fewer bytes than a record header: TFRecordDataset ignores them.
        raise ValueError(
            f"{where}: {left} bytes after its last whole record are no "
            "record: it is truncated mid-record or has bytes appended "
            f"({count} whole records). The file is damaged: copy it again."
        )
    if expected is not None and count != expected:
        raise ValueError(
            f"{where}: {count} records, expected {expected}. The file is "
            "incomplete or not the one expected; for a file of another size, "
            "state its size with `expected_examples`."
        )
    return np.concatenate(labels) if labels else np.zeros([0], np.int64)
