"""Facts about finished runs, read from their folders for RESULTS.md.

A run folder holds what launch.train wrote (flags.json: the resolved flags
and schedule; metrics.json) and what the runner wrote (wall_time.json;
reproduce.json: the budget, command lines, machine and library versions).
Every number RESULTS.md states about a run comes from here.
"""

from __future__ import annotations

import functools
import os

from absl import logging

from la_keras.runs import reporting
from launch.reproduce import runner
from launch.reproduce import spec

# Resolved flags of flags.json that say what a training run is.
_IDENTITY_FLAGS = ("mode", "loss", "tau", "holdout_fraction")


def load_run(run_dir: str, metrics: dict | None, dataset=None) -> dict:
    """`{"dir", "metrics", "config", "record", "wall", "info"}` of a run.

    `config` is flags.json, `record` reproduce.json, `wall` wall_time.json
    (each None when missing), `info` the run's training set
    (`la_keras.datasets.DatasetInfo`, None when it cannot be loaded here),
    read from `dataset` (this invocation's `--datasets` value, where a
    moved prepared file or folder now lies) when given.
    """
    config = runner.read_json(os.path.join(run_dir, "flags.json"))
    return {
        "dir": run_dir,
        "metrics": metrics,
        "config": config,
        "record": runner.read_json(os.path.join(run_dir, runner.RECORD)),
        "wall": runner.read_json(os.path.join(run_dir, runner.WALL_TIME)),
        "info": None if config is None else dataset_info(run_dir, dataset),
    }


def dataset_info(run_dir: str, dataset: str | None = None):
    """The DatasetInfo of a run's training split (None if not loadable).

    Args:
        run_dir: the run's model_dir.
        dataset: where its data lies now (checked by checksum), or None
            for where flags.json says.
    """
    from absl import app

    from la_keras.runs.resolved import ResolvedConfig

    try:
        data = ResolvedConfig.read(run_dir).with_data(dataset).data
    except app.UsageError as e:
        logging.warning("Cannot load the data of %s here: %s", run_dir, e)
        return None
    return _dataset_info(data)


@functools.cache
def _dataset_info(data):
    """`data.info()`, once per `DataConfig` (they are frozen)."""
    try:
        info = data.info()
    except Exception as e:  # noqa: BLE001 - the data may be elsewhere
        logging.warning("Cannot load %s here: %s", data.dataset, e)
        return None
    return info


def prepared_text(dataset: str) -> str | None:
    """What a `prepared:PATH` dataset is, for RESULTS.md; None for others.

    The file, its checksum (`la_keras.datasets.prepared.checksum`, which a
    moved run recognises it by), and the dataset and arguments
    `launch.prepare` made it from, read from the file.
    """
    from la_keras.datasets import prepared

    metadata = spec.prepared_metadata(dataset)
    if metadata is None:
        return None
    path = dataset[len(prepared.PREFIX) :]
    source = metadata["source"]
    made = source.get("dataset", "unknown")
    if source.get("ratio") is not None and ":" not in made:
        made += (
            f", {source.get('profile')} profile, imbalance ratio "
            f"{source['ratio']:g}, seed {source.get('seed')}"
        )
    counts = metadata["train_counts"]
    return (
        f"the prepared file `{os.path.basename(path)}` (`{dataset}`; "
        f"checksum {prepared.checksum(path)}, the SHA-256 of its "
        f"metadata.json, which holds every array's), written by "
        f"launch.prepare {source.get('la_keras', '')} from {made}; "
        f"{metadata['num_classes']} classes, "
        f"{metadata['num_examples']['train']} training images, largest / smallest "
        f"class {max(counts) / max(min(counts), 1):.4g}"
    )


def schedule_text(config: dict) -> str:
    """The budget of a run in words, from its flags.json."""
    (_, warmup), *decays = config["schedule"]
    steps = "".join(f", ×{m:g} from epoch {e:g}" for m, e in decays)
    return (
        f"{config['epochs']} epochs of {config['model']}, batch "
        f"{config['train_batch_size']}, SGD (momentum {config['momentum']:g}"
        f"{', Nesterov' if config['nesterov'] else ''}), weight decay "
        f"{config['weight_decay']:g}; learning rate "
        f"{config['base_learning_rate']:g} after a linear warm-up of "
        f"{warmup:g} epoch(s){steps}; XLA "
        f"{'on' if config['jit_compile'] else 'off'}"
    )


def flags_text(config: dict, run_flags: list[str]) -> str:
    """The flags that define a run, with the values its flags.json holds."""
    names = list(_IDENTITY_FLAGS)
    names += [
        name
        for name in (flag[2:].split("=", 1)[0] for flag in run_flags)
        if name not in names
    ]
    if config["mode"] != "posthoc" and config["loss"] != "logit_adjusted":
        names.remove("tau")
    return " ".join(f"--{name}={_value(config.get(name))}" for name in names)


def _value(value) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def budget(run: dict) -> str | None:
    return (run["record"] or {}).get("budget")


def data_sizes(run: dict) -> tuple[int | None, int | None]:
    """`(images trained on, images held out)` of a finished run.

    From metrics.json where it says (`train_examples`, `holdout`), else
    from the run's dataset loaded here; None where neither can tell.
    """
    metrics, info = run["metrics"] or {}, run["info"]
    trained = metrics.get("train_examples")
    if trained is None and info is not None:
        trained = info.num_examples["train"]
    held = (metrics.get("holdout") or {}).get("num_examples")
    if held is None and info is not None:
        held = info.num_examples.get("holdout", 0)
    return trained, held


def train_time_text(run: dict) -> str | None:
    """Wall times and training images/s of a run; None without a record.

    Images/s is metrics.json's `images_per_second` (the training loop's own
    measure, last invocation) where the run wrote one; else the images the
    run trained on (steps × batch) over launch.train's wall time summed
    over the invocations (start-up, checkpoints and evaluation included).
    """
    wall, metrics, config = run["wall"], run["metrics"], run["config"]
    if not wall:
        return None
    parts = [
        f"{module} {reporting.hms(seconds)}"
        for module, seconds in sorted(wall.items())
    ]
    if not metrics or not config:
        return "; ".join(parts)
    parts.append(
        f"epoch {metrics['epoch']} of {config['epochs']}, {metrics['step']} "
        f"steps × batch {config['train_batch_size']}"
    )
    if metrics.get("images_per_second") is not None:
        parts.append(
            f"{metrics['images_per_second']:.1f} images/s in the training loop"
        )
    elif wall.get("launch.train"):
        images = metrics["step"] * config["train_batch_size"]
        parts.append(
            f"{images / wall['launch.train']:.1f} images/s of launch.train "
            "wall time"
        )
    return "; ".join(parts)


def total_wall(runs) -> float:
    """Seconds of every recorded subprocess of `runs`."""
    return sum(sum((run["wall"] or {}).values()) for run in runs)


def environments(runs) -> list[tuple[dict, list[str]]]:
    """Each distinct recorded machine and the runs (folders) it ran."""
    out = []
    for run in runs:
        for env in (run["record"] or {}).get("environments", []):
            for seen, dirs in out:
                if seen == env:
                    dirs.append(run["dir"])
                    break
            else:
                out.append((env, [run["dir"]]))
    return out
