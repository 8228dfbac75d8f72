"""File stores: local files, or `tf.io.gfile` for `gs://`-style paths.

A store lists `names(folder, prefix)`, `read`s a file (None if absent),
`write`s one whole (readers never see it half-written), `remove`s one if
present and `create`s one only if absent, returning True if this call did:
the exclusive step of the model_dir lease (`la_keras.runs.lock`).
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid


def for_path(path: str, settle: float = 2.0):
    """The file store of `path`: `GFileStore` if it has a scheme, else local."""
    return GFileStore(settle) if "://" in path else LocalStore()


class LocalStore:
    """Local files. A store lists `names(folder, prefix)`, `read`s a file
    (None if absent), `write`s one whole, `remove`s one if present and
    `create`s one only if absent (True if this call did)."""

    _missing = FileNotFoundError
    _open = staticmethod(open)
    _delete = staticmethod(os.remove)

    def names(self, folder: str, prefix: str) -> list:
        with contextlib.suppress(self._missing):
            return [n for n in os.listdir(folder) if n.startswith(prefix)]
        return []

    def read(self, path: str):
        with contextlib.suppress(self._missing), self._open(path) as f:
            return f.read()
        return None

    def remove(self, path: str) -> None:
        with contextlib.suppress(self._missing):
            self._delete(path)

    def write(self, path: str, text: str) -> None:
        os.replace(self._complete(path, text), path)

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
        except OSError:  # no hard links (some FUSE or SMB mounts): O_EXCL,
            # as exclusive, but a reader may see the file empty for a moment
            with contextlib.suppress(FileExistsError), open(path, "x") as f:
                f.write(text)
                return True
            return False
        finally:
            os.remove(partial)


class GFileStore(LocalStore):
    """`tf.io.gfile` (TensorFlow is imported only here; `create`: see above).
    A write goes beside its file, then is renamed over it (on `gs://` a
    server-side copy): readers see whole files; the last write wins whole."""

    def __init__(self, settle: float = 2.0, sleep=time.sleep):
        import tensorflow as tf

        self.gfile, self.settle, self.sleep = tf.io.gfile, settle, sleep
        self._missing = tf.errors.NotFoundError
        self._open, self._delete = tf.io.gfile.GFile, tf.io.gfile.remove

    def names(self, folder: str, prefix: str) -> list:
        with contextlib.suppress(self._missing):
            paths = self.gfile.glob(f"{folder.rstrip('/')}/{prefix}*")
            return [p.rsplit("/", 1)[-1] for p in paths]
        return []

    def write(self, path: str, text: str) -> None:
        partial = f"{path}.{uuid.uuid4().hex}.partial"  # "ram://" appends
        with self.gfile.GFile(partial, "w") as f:  # to a file opened again
            f.write(text)
        self.gfile.rename(partial, path, overwrite=True)

    def create(self, path: str, text: str) -> bool:
        if self.gfile.exists(path):
            return False
        self.write(path, text)
        self.sleep(self.settle)
        return self.read(path) == text
