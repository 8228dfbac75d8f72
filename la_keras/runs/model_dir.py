"""`ModelDir`: one run's folder, its lock, records and outputs.

    run_dir = ModelDir("/tmp/birds")
    with run_dir.held(chief=True, timeout=300.0):
        restored, save = run_dir.start(config, store, runner, epoch, True)
        ...
        run_dir.write_metrics(metrics)

A model_dir holds one run: its lease (`lock.py`: one writer at a time,
taken over when its holder stopped refreshing it), flags.json (the
resolved configuration, `ResolvedConfig`) and flags.txt (the options given,
a `launch.train` flagfile), checkpoints/, metrics.json, eval_metrics.json,
the per-class plot and, by default, log/ and export/. Resuming is refused
when the flags that change the result differ (`ResolvedConfig.check_resume`).
"""

from __future__ import annotations

import os

from absl import logging

from la_keras.runs import lock
from la_keras.runs import outputs
from la_keras.runs import weights_record
from la_keras.runs.errors import RunError
from la_keras.runs.resolved import ResolvedConfig
from la_keras.training import NoUsableCheckpointError

METRICS = "metrics.json"
EVAL_METRICS = "eval_metrics.json"


def restore_latest(store) -> str | None:
    """`store.restore_latest()`; refuses to start over if all are damaged."""
    try:
        return store.restore_latest()
    except NoUsableCheckpointError as e:
        raise RunError(str(e)) from e


class ModelDir:
    """The folder of one run.

    Args:
        path: the model_dir (a local path or a URL TensorFlow's file
            system reads).
    """

    def __init__(self, path: str):
        self.path = path

    def __repr__(self):
        return f"ModelDir({self.path!r})"

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def checkpoint_dir(self) -> str:
        from la_keras.training.loop import checkpoint_dir

        return checkpoint_dir(self.path)

    def held(self, chief: bool, timeout: float):
        """A context holding the folder's lease (chief) while a run writes;
        made first. `RunError` (one line) when another live run holds it."""
        if chief:
            outputs.make_dir(self.path, "--model_dir")
        return lock.held(self.path, chief, timeout)

    def config(self) -> ResolvedConfig:
        """The resolved configuration of the run (its flags.json)."""
        return ResolvedConfig.read(self.path)

    def start(self, config, store, runner, epoch, chief: bool, options=None):
        """A run's start on either backend: resume from `store`, record.

        Refuses a model_dir whose checkpoints come from flags that change
        the result (`ResolvedConfig.check_resume`), restores the newest
        intact checkpoint, and (chief only) writes flags.json and
        flags.txt, with the weights file the run started from
        (`weights_record`).

        Returns:
            `(restored checkpoint or None, save)`, where `save(step,
            epochs)` records the epoch count in `epoch` and saves a
            checkpoint.
        """
        config.check_resume(has_checkpoint=store.latest is not None)
        restored = restore_latest(store)
        if restored:
            logging.info("Resumed from %s at step %d.", restored, runner.step)
        if chief:
            started = weights_record.as_started(config, resumed=bool(restored))
            started.write(self.path, options)

        def save(step, epochs_done):
            epoch.assign(epochs_done)
            return store.save(step)

        return restored, save

    def metrics(self) -> dict | None:
        """metrics.json, or None when the run has not written it."""
        try:
            return outputs.read_json(self.file(METRICS))
        except (FileNotFoundError, ValueError):
            return None

    def write_metrics(self, metrics: dict) -> None:
        outputs.write_json(self.file(METRICS), metrics)

    def previous_facts(self, facts: dict) -> dict:
        """`facts`' keys as the run's metrics.json has them.

        Without one (killed after its last checkpoint), images/s is
        unknown: None.
        """
        previous = self.metrics() or {"images_per_second": None}
        return {key: previous[key] for key in facts if key in previous}
