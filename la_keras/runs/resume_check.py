"""Which flags a run may change when it resumes from its checkpoints.

A rerun in a `--model_dir` that holds checkpoints continues that run, so it
must compute what the first invocation would have computed. Every field of
`flags.json` is compared, except the result-neutral ones listed in
`RESULT_NEUTRAL`: a field added to `ResolvedConfig` later is compared until it
is listed there. A key missing from an older `flags.json` reads as today's
default (`ResolvedConfig.from_dict`): a new flag defaults to the behaviour before
it existed, so an old run resumes with the default and refuses another
value.

`--extend` lets `--epochs` grow when the learning rate up to the old end
stays the same: the same schedule, or one with more `(multiplier, epoch)`
steps that start at or after the old last epoch. A `--lr_schedule=cosine`
run cannot grow: its cosine spans `--epochs` (the rate is 0 at the old end,
and a longer cosine changes the rate of every step trained); the refusal
says to start a new run from its weights (`--init_from`) instead.
"""

from __future__ import annotations

import glob
import json
import os

# Fields that cannot change the trained weights or the figures computed
# from them:
RESULT_NEUTRAL = frozenset(
    {
        # where the outputs go;
        "model_dir",
        "tb_log_dir",
        "export_dir",
        # where the named dataset is read from (its files are checked by
        # record counts, `--expected_*_examples`, and a prepared file by its
        # checksums; the dataset's name is compared, a `prepared:` file or
        # `folder:` dataset by its `dataset_checksum`, not its path);
        "data_home",
        "data_dir",
        "dataset_dir",
        # the evaluation batch (batch norm runs in inference mode);
        "test_batch_size",
        # how often the loop saves, evaluates and checks for SIGTERM;
        "checkpoint_every_steps",
        "checkpoint_every_seconds",
        "keep_checkpoints",
        "steps_per_loop",
        "eval_every_epochs",
        # how the same step is compiled and which TPU runs it (not how many
        # replicas: `--strategy` and `--num_logical_cpus` are compared,
        # since TensorFlow's batch norm averages over each replica's batch);
        "jit_compile",
        "jax_loop",
        "tpu",
        # the taus tried on the holdout after training (tau* is chosen from
        # the final weights); `--tau` is compared when the loss uses it;
        "tau_grid",
        # how long a dead holder's model_dir lock is kept;
        "lock_timeout",
        # this invocation's permission to add epochs;
        "extend",
        # where a new run's first weights come from (read only when a run
        # starts; a resume continues from its checkpoint, so a weights file
        # or earlier run moved since is no change).
        "pretrained",
        "pretrained_sha256",
        "init_from",
        "head_init",
    }
)

# Fields compared only when the training uses them.
_TAU = "tau"

# How a field is named in the refusal: its flag, or the flags it is made of.
_FLAG_NAMES = {
    "schedule": "--warmup_epochs/--lr_decay_epochs/--lr_decay_multipliers",
    "dataset_checksum": "the checksum of --dataset",
}
_CHECKSUM = "dataset_checksum"
_LR_SCHEDULE = "lr_schedule"
_COSINE = "cosine"
# The fields a cosine run given a larger --epochs may show as changed.
_COSINE_GROWTH = frozenset({"epochs", "schedule", _LR_SCHEDULE})


def changed_fields(previous: dict, current: dict, loss_uses_tau: bool):
    """`{field: (old, new)}` of the fields of `current` that may not change.

    Args:
        previous, current: `ResolvedConfig.to_dict()` of the run in the
            model_dir and of this invocation.
        loss_uses_tau: whether `--tau` enters the training loss.
    """
    changed = {
        key: (previous.get(key), value)
        for key, value in current.items()
        if key not in RESULT_NEUTRAL
        and (key != _TAU or loss_uses_tau)
        and previous.get(key) != value
    }
    if previous.get(_LR_SCHEDULE) == current.get(_LR_SCHEDULE) == _COSINE:
        # The step schedule is not used by a cosine (it follows --epochs).
        changed.pop("schedule", None)
    if previous.get(_CHECKSUM) is None:
        # Recorded before checksums were: the path is what can be compared.
        changed.pop(_CHECKSUM, None)
    elif current.get(_CHECKSUM) is not None and _kind(
        previous["dataset"]
    ) == _kind(current["dataset"]):
        # A file or folder is the same data wherever it lies (a moved run).
        changed.pop("dataset", None)
    return changed


def _kind(dataset: str) -> str:
    return dataset.split(":", 1)[0] if ":" in dataset else ""


def extends(previous: dict, current: dict) -> bool:
    """Whether `current` trains `previous` further on the same schedule.

    True when `--epochs` grows and the learning rate of every step up to
    the old end is the same: the schedule's `(multiplier, start_epoch)`
    pairs are the old ones, followed by any that start at or after the old
    last epoch. (The schedule does not depend on `--epochs` once it is
    given; the data order is a function of (seed, epoch).) Never for a
    cosine run: its rate at every step depends on `--epochs`.
    """
    if _COSINE in (previous.get(_LR_SCHEDULE), current.get(_LR_SCHEDULE)):
        return False
    old_epochs, new_epochs = previous["epochs"], current["epochs"]
    old, new = previous["schedule"], current["schedule"]
    return (
        new_epochs > old_epochs
        and new[: len(old)] == old
        and all(start >= old_epochs for _, start in new[len(old) :])
    )


def refusal(model_dir: str, changed: dict, previous: dict, extend: bool):
    """The one-line refusal naming each changed flag, old -> new."""
    listed = ", ".join(
        f"{_FLAG_NAMES.get(key, '--' + key)} {_text(old)} -> {_text(new)}"
        for key, (old, new) in changed.items()
    )
    hint = ""
    if _CHECKSUM in changed:
        hint = (
            " --dataset must be the data the run was trained on (checksum "
            f"{changed[_CHECKSUM][0]}), wherever it lies now."
        )
    grows = "epochs" in changed and changed["epochs"][1] > changed["epochs"][0]
    cosine = previous.get(_LR_SCHEDULE) == _COSINE
    if grows and cosine and set(changed) <= _COSINE_GROWTH:
        hint = _cosine_hint(model_dir, previous, *changed["epochs"])
    elif grows and set(changed) == {"epochs"} and not extend:
        hint = " To train it further on the same schedule, add --extend."
    elif grows and set(changed) == {"epochs", "schedule"}:
        hint = (
            " To train it further on the old schedule, add --extend and give "
            f"that schedule: {schedule_flags(previous['schedule'])}."
        )
    return (
        f"--model_dir={model_dir} holds a run with other flags: {listed}. "
        f"Rerun with the old values or use a new --model_dir.{hint}"
    )


def _cosine_hint(model_dir: str, previous: dict, old: int, new: int) -> str:
    """Why a cosine run cannot grow, and the command that trains it more."""
    new_dir = f"{model_dir.rstrip('/')}_extended"
    where = (
        f"--model_dir={new_dir}{_moved_outputs(previous, model_dir, new_dir)}"
    )
    why = (
        f" --extend cannot grow a --lr_schedule=cosine run: its learning "
        f"rate reached 0 at epoch {old}, and a cosine over {new} epochs "
        "would change the rate of every step already trained."
    )
    if not previous.get("backbone"):
        return (
            f"{why} To train {new} epochs, start over: {where} --epochs={new}."
        )
    added = new - old
    return (
        f"{why} To train it {added} more epoch{'s' if added > 1 else ''}, "
        "start a new run (a new cosine from --base_learning_rate) from its "
        "backbone, LoRA merged, with a new head (--head_init): "
        f"--init_from={model_dir} {where} --epochs={added}."
    )


def _moved_outputs(previous: dict, model_dir: str, new_dir: str) -> str:
    """`--tb_log_dir` / `--export_dir` flags for outputs that lay inside
    `model_dir`, moved into `new_dir` (the export_dir default left out)."""
    flags = ""
    for key in ("tb_log_dir", "export_dir"):
        path = previous.get(key)
        moved = moved_path(path, model_dir, new_dir)
        if moved != path and moved != os.path.join(new_dir, "export"):
            flags += f" --{key}={moved}"
    return flags


def schedule_flags(schedule) -> str:
    """The schedule flags that resolve to `schedule` (its pairs)."""
    (_, warmup), *decays = schedule
    flags = [f"--warmup_epochs={_number(warmup)}"]
    if decays:
        flags.append(
            "--lr_decay_epochs=" + ",".join(_number(e) for _, e in decays)
        )
        flags.append(
            "--lr_decay_multipliers=" + ",".join(_number(m) for m, _ in decays)
        )
    return " ".join(flags)


def _number(value) -> str:
    return repr(float(value)).removesuffix(".0")


def _text(value) -> str:
    if value is None:
        return "unset"
    if isinstance(value, str):
        return value
    return json.dumps(value)


def moved_path(path: str | None, old: str | None, new: str) -> str | None:
    """`path`, if it lies in folder `old`, at the same place in `new`.

    How a run's recorded `tb_log_dir` / `export_dir` follow its model_dir
    when the run is moved (`old`: the model_dir recorded, `new`: today's).
    """
    if not path or not old:
        return path
    if "://" not in old + path:
        path, old = os.path.normpath(path), os.path.normpath(old)
    old = old.rstrip("/")
    if path == old:
        return new
    if path.startswith(old + "/"):
        return new.rstrip("/") + path[len(old) :]
    return path


def foreign_checkpoints(model_dir: str) -> str | None:
    """Why this backend may not start over in `model_dir`, or None.

    A run resumes on the backend that wrote its checkpoints: TensorFlow's
    `ckpt-N.index` / `.data` (`tf.train.Checkpoint`) or the JAX backend's
    `ckpt-N.npz`. Each backend's store sees only its own, so without this a
    run moved to the other backend would start over from step 0 beside
    them. (`launch.evaluate` and `launch.export` read a JAX run's `.npz` on
    either backend.)
    """
    if "://" in model_dir:
        return None
    import keras

    from la_keras.training.loop import checkpoint_dir

    directory = checkpoint_dir(model_dir)
    written = {
        "jax": glob.glob(os.path.join(directory, "ckpt-*.npz")),
        "tensorflow": glob.glob(os.path.join(directory, "ckpt-*.index")),
    }
    backend = keras.backend.backend()
    for writer, paths in written.items():
        if writer != backend and paths:
            newest = os.path.basename(max(paths, key=_step_of))
            return (
                f"--model_dir={model_dir} holds checkpoints of the {writer} "
                f"backend ({newest}), which the {backend} backend cannot "
                f"resume: rerun with KERAS_BACKEND={writer}, or use a new "
                "--model_dir."
            )
    return None


def _step_of(path: str) -> int:
    digits = os.path.basename(path).split("-", 1)[1].split(".", 1)[0]
    return int(digits) if digits.isdigit() else -1
