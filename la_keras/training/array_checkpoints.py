"""`ArrayCheckpointStore`: backend-neutral checkpoints of Keras variables.

The JAX backend's variables are not TensorFlow variables, so
`tf.train.Checkpoint` cannot save them. This store writes the values of
named groups of Keras variables (the model's, the optimizer's, the epoch
counter) into one `ckpt-<step>.npz` per checkpoint, with the guarantees of
`CheckpointStore`: written beside its name and renamed into place, read
back before older checkpoints are rotated away, and on resume the newest
checkpoint that reads cleanly is restored, a damaged one named in one
warning and skipped.
"""

from __future__ import annotations

import glob
import os
import re
import zipfile

import numpy as np
from absl import logging

from la_keras.training.loop import NoUsableCheckpointError

_CKPT = re.compile(r"^ckpt-(\d+)\.npz$")


def list_array_checkpoints(directory: str) -> list[tuple[int, str]]:
    """`(step, path)` of every `ckpt-<step>.npz` in `directory`, newest first."""
    found = []
    for path in glob.glob(os.path.join(directory, "ckpt-*.npz")):
        match = _CKPT.match(os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found, reverse=True)


class ArrayCheckpointStore:
    """Checkpoints of named lists of Keras variables, one `.npz` each.

    Args:
        directory: the checkpoint folder (read from, and written to unless
            `write_directory` is given).
        max_to_keep: checkpoints kept after a successful save.
        write_directory: where this process writes.
        expect_partial: restore these groups from checkpoints that hold
            more (the model alone, for evaluation); saving is unaffected.
        **groups: name -> list of Keras variables (`model=model.variables`,
            `optimizer=optimizer.variables`, `epoch=[epoch_variable]`).
    """

    def __init__(
        self,
        directory,
        max_to_keep=3,
        write_directory=None,
        *,
        expect_partial=False,
        **groups,
    ):
        self.directory = directory
        self.expect_partial = bool(expect_partial)
        self.write_directory = write_directory or directory
        self.max_to_keep = int(max_to_keep)
        self.groups = {
            name: list(variables) for name, variables in groups.items()
        }

    @property
    def latest(self) -> str | None:
        found = list_array_checkpoints(self.directory)
        return found[0][1] if found else None

    def _values(self) -> dict:
        return {
            f"{name}/{i}": np.asarray(variable.value)
            for name, variables in self.groups.items()
            for i, variable in enumerate(variables)
        }

    def _read(self, path: str) -> dict:
        with np.load(path, allow_pickle=False) as data:
            values = {key: data[key] for key in data.files}
        expected = self._values()
        if self.expect_partial:
            values = {k: v for k, v in values.items() if k in expected}
        if set(values) != set(expected):
            raise ValueError("it holds other variables than this run's")
        for key, value in values.items():
            if value.shape != expected[key].shape:
                raise ValueError(
                    f"{key} has shape {value.shape}, expected "
                    f"{expected[key].shape}"
                )
        return values

    def _assign(self, values: dict) -> None:
        for name, variables in self.groups.items():
            for i, variable in enumerate(variables):
                variable.assign(values[f"{name}/{i}"])

    def restore(self, path: str) -> str:
        """Restores the checkpoint `path`; ValueError if it does not read."""
        try:
            values = self._read(path)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            raise ValueError(
                f"Checkpoint {path} cannot be restored: {e}"
            ) from e
        self._assign(values)
        return path

    def restore_latest(self) -> str | None:
        """Restores the newest checkpoint that reads cleanly; see module doc."""
        found = list_array_checkpoints(self.directory)
        for _, path in found:
            try:
                values = self._read(path)
            except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
                logging.warning("Skipping damaged checkpoint %s: %s", path, e)
                continue
            self._assign(values)
            return path
        if found:
            raise NoUsableCheckpointError(
                f"All {len(found)} checkpoints in {self.directory} are "
                "damaged. Move them away to start over, or restore a backup."
            )
        return None

    def save(self, step: int) -> str:
        """Writes `ckpt-<step>.npz`, reads it back, then rotates older ones."""
        os.makedirs(self.write_directory, exist_ok=True)
        path = os.path.join(self.write_directory, f"ckpt-{int(step)}.npz")
        partial = path + ".partial"
        with open(partial, "wb") as f:
            np.savez(f, **self._values())
            f.flush()
            os.fsync(f.fileno())
        os.replace(partial, path)
        self._read(path)
        for _, old in list_array_checkpoints(self.write_directory)[
            self.max_to_keep :
        ]:
            if old != path:
                os.remove(old)
        return path
