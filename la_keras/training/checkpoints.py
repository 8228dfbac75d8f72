"""`CheckpointStore`: save, resume, and survive damaged checkpoints.

A thin layer over `tf.train.Checkpoint` / `tf.train.CheckpointManager`
with the guarantees a preemptible run needs:

- Resume takes the newest checkpoint that restores cleanly. A damaged one
  (truncated data, missing index) is named in one warning and skipped; the
  next older one is tried.
- The `checkpoint` state file is not trusted: the candidates are the
  `ckpt-<step>.index` files present, so a missing or stale state file is
  rebuilt from them.
- Paths go through `tf.io.gfile`, so a `gs://` model_dir works too.
- An intact checkpoint is never deleted before a newer one is written and
  readable: rotation (`max_to_keep`) runs only after the new checkpoint has
  been read back.
"""

from __future__ import annotations

import os
import re

import tensorflow as tf
from absl import logging

from la_keras.training.loop import NoUsableCheckpointError
from la_keras.training.loop import checkpoint_dir  # noqa: F401 - re-exported

_CKPT = re.compile(r"^ckpt-(\d+)\.index$")


def list_checkpoints(directory: str) -> list[tuple[int, str]]:
    """`(step, prefix)` of every `ckpt-<step>` in `directory`, newest first."""
    found = []
    for path in tf.io.gfile.glob(os.path.join(directory, "ckpt-*.index")):
        match = _CKPT.match(os.path.basename(path))
        if match:
            found.append((int(match.group(1)), path[: -len(".index")]))
    return sorted(found, reverse=True)


def _readable(prefix: str) -> str | None:
    """None if the checkpoint's index and data files read; else why not."""
    try:
        reader = tf.train.load_checkpoint(prefix)
        for name in reader.get_variable_to_shape_map():
            reader.get_tensor(name)
    except (tf.errors.OpError, ValueError, OSError, IndexError) as e:
        return str(e).splitlines()[0] if str(e) else type(e).__name__
    return None


def _write_state_file(directory: str, latest: str) -> None:
    """Writes the `checkpoint` state file (what `tf.train.latest_checkpoint`
    reads) for the checkpoints present, `latest` last; atomically."""
    names = [
        os.path.basename(p) for _, p in reversed(list_checkpoints(directory))
    ]
    lines = [f'model_checkpoint_path: "{os.path.basename(latest)}"']
    lines += [f'all_model_checkpoint_paths: "{name}"' for name in names]
    path = os.path.join(directory, "checkpoint")
    tmp = path + ".partial"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write("\n".join(lines) + "\n")
    tf.io.gfile.rename(tmp, path, overwrite=True)


def model_trackables(model) -> dict:
    """What a checkpoint holds of a Keras `model`: the model's object graph,
    and every variable again by position (`model_variables`).

    Keras's object graph misses the layers that a layer appends to a list
    after construction (the transformer blocks of KerasHub's ViT encoder):
    the flat list holds them too, in `model.variables`' order, which is the
    same for every build of the model. Checkpoints written without the list
    still restore.
    """
    return {"model": model, "model_variables": list(model.variables)}


class CheckpointStore:
    """Checkpoints of a model, its optimizer and the epoch counter.

    Args:
        directory: the checkpoint folder (read from, and written to unless
            `write_directory` is given).
        max_to_keep: checkpoints kept after a successful save.
        write_directory: where this process writes (non-chief workers of a
            multi-worker run write to a scratch folder).
        **objects: trackables to save (`model=`, `optimizer=`, `epoch=`).
            A `model` is saved with `model_trackables`.
    """

    def __init__(
        self, directory, max_to_keep=3, write_directory=None, **objects
    ):
        self.directory = directory
        self.write_directory = write_directory or directory
        self.max_to_keep = int(max_to_keep)
        if "model" in objects:
            objects.update(model_trackables(objects.pop("model")))
        self.checkpoint = tf.train.Checkpoint(**objects)
        self._manager = tf.train.CheckpointManager(
            self.checkpoint, self.write_directory, max_to_keep=None
        )

    @property
    def latest(self) -> str | None:
        """The newest checkpoint prefix present (intact or not)."""
        found = list_checkpoints(self.directory)
        return found[0][1] if found else None

    def restore_latest(self) -> str | None:
        """Restores the newest checkpoint that reads cleanly.

        Returns:
            Its path, or None when the folder holds no checkpoint.

        Raises:
            NoUsableCheckpointError: checkpoints exist but all are damaged
                (the run refuses to start over from step 0 silently).
        """
        found = list_checkpoints(self.directory)
        damaged = []
        for _, prefix in found:
            problem = _readable(prefix)
            if problem is None:
                try:
                    status = self.checkpoint.restore(prefix)
                    status.assert_existing_objects_matched()
                except (tf.errors.OpError, AssertionError, ValueError) as e:
                    problem = str(e).splitlines()[0]
            if problem is None:
                self._rebuild_state_file(prefix)
                return prefix
            logging.warning(
                "Skipping damaged checkpoint %s: %s", prefix, problem
            )
            damaged.append(prefix)
        if damaged:
            raise NoUsableCheckpointError(
                f"All {len(damaged)} checkpoints in {self.directory} are "
                f"damaged ({', '.join(os.path.basename(p) for p in damaged)})."
                " Move them away to start over, or restore a backup."
            )
        return None

    def _rebuild_state_file(self, prefix: str) -> None:
        """Points the `checkpoint` state file at the restored checkpoint."""
        if self.write_directory != self.directory:
            return
        _write_state_file(self.directory, prefix)

    def save(self, step: int) -> str:
        """Writes `ckpt-<step>`, reads it back, then rotates older ones."""
        path = self._manager.save(checkpoint_number=int(step))
        problem = _readable(path)
        if problem is not None:
            raise OSError(
                f"Checkpoint {path} was written but does not read "
                f"back: {problem}"
            )
        self._rotate(keep=path)
        return path

    def _rotate(self, keep: str) -> None:
        found = list_checkpoints(self.write_directory)
        for _, prefix in found[self.max_to_keep :]:
            if prefix == keep:
                continue
            for path in tf.io.gfile.glob(prefix + ".*"):
                try:
                    tf.io.gfile.remove(path)
                except (OSError, tf.errors.OpError) as e:
                    logging.warning("Could not remove %s: %s", path, e)
        _write_state_file(self.write_directory, keep)
