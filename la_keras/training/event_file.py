"""TensorBoard event files in pure Python, without TensorFlow or tensorboard.

`EventFileWriter` writes scalar summaries byte for byte as
`tf.summary.write(tag, tf.cast(value, tf.float32), step=step,
metadata=<scalars plugin>)` writes them, so TensorBoard (and
`tf.compat.v1.train.summary_iterator`) reads them on any Keras backend. The
few protobuf messages are encoded by hand, and records use TFRecord framing
with masked CRC32C checksums.
"""

from __future__ import annotations

import itertools
import os
import socket
import struct
import time

import numpy as np

_counter = itertools.count()


def _make_crc32c_table() -> list[int]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
        table.append(crc)
    return table


_CRC32C_TABLE = _make_crc32c_table()


def crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`, as TFRecord files use it."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _masked_crc(data: bytes) -> bytes:
    crc = crc32c(data)
    masked = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    return struct.pack("<I", masked)


def _varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # Negative int64 values take ten bytes.
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field (string, bytes or message)."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _event(wall_time: float, step: int, rest: bytes) -> bytes:
    # Event: wall_time = 1 (double), step = 2 (int64, omitted when 0).
    out = b"\x09" + struct.pack("<d", wall_time)
    if step:
        out += b"\x10" + _varint(step)
    return out + rest


# Summary.Value.metadata: SummaryMetadata{plugin_data{plugin_name}}.
_SCALAR_METADATA = _field(9, _field(1, _field(1, b"scalars")))


class EventFileWriter:
    """Writes scalars to a new TensorBoard event file in `log_dir`.

    Local paths are written with plain Python; paths with a scheme (such as
    `gs://`) go through `tf.io.gfile`, so they need TensorFlow installed.

    Args:
        log_dir: the directory for the event file, created if missing.
    """

    def __init__(self, log_dir: str):
        log_dir = os.fspath(log_dir)
        now = int(time.time())
        name = (
            f"events.out.tfevents.{now}.{socket.gethostname()}."
            f"{os.getpid()}.{next(_counter)}.v2"
        )
        if "://" in log_dir:
            import tensorflow as tf

            tf.io.gfile.makedirs(log_dir)
            self.path = log_dir.rstrip("/") + "/" + name
            self._file = tf.io.gfile.GFile(self.path, "wb")
        else:
            os.makedirs(log_dir, exist_ok=True)
            self.path = os.path.join(log_dir, name)
            self._file = open(self.path, "wb")
        # Event.file_version = 3; TensorFlow's first event has whole seconds.
        self._write_record(_event(now, 0, _field(3, b"brain.Event:2")))
        self.flush()

    def _write_record(self, data: bytes) -> None:
        if self._file is None:
            raise ValueError(f"EventFileWriter for {self.path} is closed.")
        length = struct.pack("<Q", len(data))
        self._file.write(
            length + _masked_crc(length) + data + _masked_crc(data)
        )

    def scalar(self, tag: str, value, step: int) -> None:
        """Writes one scalar summary, cast to float32.

        Args:
            tag: the summary's name.
            value: a number, or anything `np.asarray` turns into one.
            step: the global step.
        """
        array = np.asarray(value)
        if array.size != 1:
            raise ValueError(f"{tag!r}: expected a scalar, got {array.shape}.")
        content = array.astype("<f4").tobytes()
        # TensorProto: dtype = 1 (DT_FLOAT), empty tensor_shape = 2,
        # tensor_content = 4.
        tensor = b"\x08\x01\x12\x00" + _field(4, content)
        value_proto = (
            _field(1, tag.encode("utf-8"))
            + _field(8, tensor)
            + _SCALAR_METADATA
        )
        summary = _field(5, _field(1, value_proto))  # Summary.value = 1.
        self._write_record(_event(time.time(), int(step), summary))

    def flush(self) -> None:
        """Pushes the written events to the file."""
        if self._file is None:
            raise ValueError(f"EventFileWriter for {self.path} is closed.")
        self._file.flush()

    def close(self) -> None:
        """Flushes and closes the file; closing twice is fine."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self) -> EventFileWriter:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
