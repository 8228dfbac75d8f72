"""The file operations of `la_keras.runs.lock`: local (os) or `tf.io.gfile`.

A path with a scheme (`gs://...`, `ram://...`) goes through `tf.io.gfile`,
imported only then: the JAX backend runs without TensorFlow. Each store has
`names(folder, prefix)`, `read(path)` (None if absent), `write(path, text)`
(replaces it whole), `remove(path)` (absent is fine) and `create(path,
text)`, which writes `path` only if it does not exist and says whether this
call did.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid


def join(folder: str, name: str) -> str:
    if "://" in folder:
        return f"{folder.rstrip('/')}/{name}"
    return os.path.join(folder, name)


def for_path(path: str, settle: float = 2.0):
    """The store for `path`: `GFileStore` if it has a scheme, else local."""
    return GFileStore(settle) if "://" in path else LocalStore()


class LocalStore:
    """POSIX files: `create` is atomic (hard link of a complete file)."""

    def names(self, folder: str, prefix: str) -> list:
        try:
            return [n for n in os.listdir(folder) if n.startswith(prefix)]
        except FileNotFoundError:
            return []

    def read(self, path: str):
        try:
            with open(path) as f:
                return f.read()
        except FileNotFoundError:
            return None

    def _complete(self, path: str, text: str) -> str:
        """A complete, synced file beside `path` under a unique name."""
        folder, base = os.path.split(path)
        partial = os.path.join(folder, f".{base}.{uuid.uuid4().hex}.partial")
        with open(partial, "x") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        return partial

    def create(self, path: str, text: str) -> bool:
        partial = self._complete(path, text)
        try:
            os.link(partial, path)  # fails if `path` exists: atomic
            return True
        except FileExistsError:
            return False
        except OSError:
            # No hard links here (some FUSE or SMB mounts): O_EXCL, which
            # is as exclusive; a reader may see the file empty for a moment.
            return self._create_exclusive(path, text)
        finally:
            os.remove(partial)

    def _create_exclusive(self, path: str, text: str) -> bool:
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return True

    def write(self, path: str, text: str) -> None:
        os.replace(self._complete(path, text), path)

    def remove(self, path: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)


class GFileStore:
    """`tf.io.gfile`: no exclusive create, so `create` checks, writes, waits
    `settle` seconds and reads back (see `la_keras.runs.lock` for what that
    guarantees). Files are written beside their place and renamed over it
    (on `gs://` a server-side copy): readers see whole files, and of two
    concurrent writes the last one wins whole.
    """

    def __init__(self, settle: float = 2.0, sleep=time.sleep):
        import tensorflow as tf

        self.gfile = tf.io.gfile
        self.not_found = tf.errors.NotFoundError
        self.settle = settle
        self.sleep = sleep

    def names(self, folder: str, prefix: str) -> list:
        try:
            paths = self.gfile.glob(join(folder, prefix + "*"))
        except self.not_found:
            return []
        return [p.rsplit("/", 1)[-1] for p in paths]

    def read(self, path: str):
        try:
            with self.gfile.GFile(path, "r") as f:
                return f.read()
        except self.not_found:
            return None

    def create(self, path: str, text: str) -> bool:
        if self.gfile.exists(path):
            return False
        self.write(path, text)
        self.sleep(self.settle)
        return self.read(path) == text

    def write(self, path: str, text: str) -> None:
        # Not in place: "ram://" appends to a file opened again.
        partial = f"{path}.{uuid.uuid4().hex}.partial"
        with self.gfile.GFile(partial, "w") as f:
            f.write(text)
        self.gfile.rename(partial, path, overwrite=True)

    def remove(self, path: str) -> None:
        with contextlib.suppress(self.not_found):
            self.gfile.remove(path)
