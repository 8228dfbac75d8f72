"""The weights file a run started from, as its flags.json records it.

A run started with `--pretrained=PATH` records the file's absolute path and
its SHA-256 (`pretrained`, `pretrained_sha256`), hashed once when the run
starts, so that its figures can be traced to the weights. A resumed run
continues from its checkpoint and never reads the file again: it keeps
what was recorded at its start, wherever the file went since; a file at
`--pretrained` whose contents differ from the recorded ones gets a
warning. Both fields are result-neutral for resume
(`la_keras.runs.resume_check.RESULT_NEUTRAL`). `imagenet` and a hub preset's
weights are recorded by name, without a hash.
"""

from __future__ import annotations

import hashlib
import os

from absl import logging

from la_keras.models.hub import PRESET_WEIGHTS
from la_keras.runs import outputs

# Read at a time while hashing: the files run from MBs to GBs.
CHUNK_BYTES = 1 << 20
# --pretrained values that name weights rather than a file.
NAMED_WEIGHTS = ("imagenet", PRESET_WEIGHTS)


def is_file(pretrained: str | None) -> bool:
    """Whether `--pretrained` is a weights file (not None or a name)."""
    return bool(pretrained) and pretrained not in NAMED_WEIGHTS


def sha256(path: str) -> str:
    """The hex SHA-256 of a local or remote (`gs://`) file, streamed."""
    digest = hashlib.sha256()
    if "://" in path:
        import tensorflow as tf

        opened = tf.io.gfile.GFile(path, "rb")
    else:
        opened = open(path, "rb")
    with opened as f:
        for chunk in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _absolute(path: str) -> str:
    return path if "://" in path else os.path.abspath(path)


def as_started(config, resumed: bool):
    """`config` with the weights its run started from, for flags.json.

    Args:
        config: this invocation's `ResolvedConfig`.
        resumed: whether it continues the run in its model_dir from a
            checkpoint (then the values recorded at the start are kept).
    """
    if resumed:
        return _recorded(config)
    if not is_file(config.pretrained):
        return config.replace(pretrained_sha256=None)
    path = _absolute(config.pretrained)
    return config.replace(pretrained=path, pretrained_sha256=sha256(path))


def _recorded(config):
    path = os.path.join(config.model_dir, "flags.json")
    try:
        previous = outputs.read_json(path)
    except (FileNotFoundError, ValueError, OSError):
        return config  # checkpoints without flags.json: nothing recorded
    digest = previous.get("pretrained_sha256")
    if digest and is_file(config.pretrained):
        _warn_if_changed(_absolute(config.pretrained), digest)
    return config.replace(
        pretrained=previous.get("pretrained"), pretrained_sha256=digest
    )


def _warn_if_changed(path: str, digest: str) -> None:
    try:
        if not outputs.exists(path):
            return
        now = sha256(path)
    except OSError:
        return  # unreadable now: the run does not need it
    if now != digest:
        logging.warning(
            "--pretrained=%s now holds other weights (sha256 %s) than the "
            "run started from (%s); it resumes from its checkpoint, which "
            "does not read them, and flags.json keeps the weights it "
            "started from.", path, now, digest,
        )  # fmt: skip
