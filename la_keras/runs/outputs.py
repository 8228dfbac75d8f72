"""Atomic outputs: a file or folder is whole or absent, never half-written.

Every output of a run (flags, metrics.json, the plot, the SavedModel) is
written beside its destination under a temporary name and renamed into
place, so a kill at any moment leaves the previous complete file or the new
complete one. A folder replaces an existing one with one atomic
`renameat2(RENAME_EXCHANGE)` where the kernel offers it (Linux); elsewhere
the old folder is renamed aside first, and `recover_dir` puts it back if a
kill fell between the two renames.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import os
import shutil
import tempfile
from collections.abc import Iterator

from la_keras.runs.errors import RunError

# The trained model of a JAX-backend run, in its model_dir.
KERAS_MODEL = "model.keras"
_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _partial_name(path: str, suffix: str) -> str:
    directory, base = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f".{base}.{suffix}-{os.getpid()}")


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remote(path: str) -> bool:
    return "://" in path


def exists(path: str) -> bool:
    """Whether a local or remote (`gs://`) path exists."""
    if not _remote(path):
        return os.path.exists(path)
    import tensorflow as tf

    return tf.io.gfile.exists(path)


def read_json(path: str):
    """JSON of a local or remote (`gs://`) file; FileNotFoundError if none."""
    if not _remote(path):
        with open(path) as f:
            return json.load(f)
    import tensorflow as tf

    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(path)
    with tf.io.gfile.GFile(path) as f:
        return json.load(f)


def write_bytes(path: str, data: bytes) -> None:
    """Writes `data` to `path` atomically (temp file, fsync, rename).

    Remote paths (`gs://...`) are written with `tf.io.gfile`: an object
    store's upload is atomic already.
    """
    if _remote(path):
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "wb") as f:
            f.write(data)
        return
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{os.path.basename(path)}.", suffix=".partial", dir=directory
    )
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_text(path: str, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str, data) -> None:
    """JSON with sorted keys; NaN or inf is refused (not valid JSON)."""
    text = json.dumps(data, indent=2, sort_keys=True, allow_nan=False)
    write_text(path, text + "\n")


def _exchange(a: str, b: str) -> bool:
    """Atomically swaps two paths (Linux renameat2); False if unsupported."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    libc = ctypes.CDLL(name, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        return False
    result = renameat2(
        _AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE
    )
    return result == 0


def recover_dir(path: str) -> None:
    """Puts back a folder that a killed `atomic_dir` had renamed aside."""
    aside = _partial_name(path, "old")
    parent = os.path.dirname(os.path.abspath(path))
    prefix = f".{os.path.basename(path)}."
    if not os.path.isdir(parent):
        return
    for entry in os.listdir(parent):
        full = os.path.join(parent, entry)
        if not entry.startswith(prefix):
            continue
        if ".old-" in entry and not os.path.exists(path):
            os.rename(full, path)
        elif ".partial-" in entry or ".old-" in entry:
            if full != aside:
                shutil.rmtree(full, ignore_errors=True)


@contextlib.contextmanager
def atomic_dir(path: str) -> Iterator[str]:
    """Yields a temporary folder that replaces `path` when the block ends.

    If the block raises (or the process is killed), `path` keeps its
    previous complete contents and the partial folder is removed (now, or
    by the next `atomic_dir` / `recover_dir` on the same path).

    Example:

    ```python
    with atomic_dir("run/export") as tmp:
        tf.saved_model.save(module, tmp)
    ```
    """
    if _remote(path):
        # Object stores have no folder rename; write in place.
        yield path
        return
    recover_dir(path)
    partial = _partial_name(path, "partial")
    shutil.rmtree(partial, ignore_errors=True)
    os.makedirs(partial)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    if not os.path.exists(path):
        os.rename(partial, path)
    elif _exchange(partial, path):
        shutil.rmtree(partial, ignore_errors=True)
    else:
        aside = _partial_name(path, "old")
        os.rename(path, aside)
        os.rename(partial, path)
        shutil.rmtree(aside, ignore_errors=True)


def make_dir(path: str, what: str) -> None:
    """Creates folder `path` (a flag's value, named `what` in errors).

    Raises:
        RunError: `path` is a file, or cannot be created or written.
    """

    if _remote(path):
        import tensorflow as tf

        tf.io.gfile.makedirs(path)
        return
    if os.path.exists(path) and not os.path.isdir(path):
        raise RunError(f"{what}={path} is a file, not a folder.")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as e:
        raise RunError(
            f"{what}={path} cannot be created: {e.strerror or e}."
        ) from e
    if not os.access(path, os.W_OK | os.X_OK):
        raise RunError(f"{what}={path} is not writable.")
