"""Which flags a run may change when it resumes from its checkpoints.

A rerun in a `--model_dir` that holds checkpoints continues that run, so it
must compute what the first invocation would have computed. Every field of
`flags.json` is compared, except the result-neutral ones listed in
`RESULT_NEUTRAL`: a field added to `RunConfig` later is compared until it
is listed there. A key missing from an older `flags.json` reads as today's
default (`RunConfig.from_dict`): a new flag defaults to the behaviour before
it existed, so an old run resumes with the default and refuses another
value.

`--extend` lets `--epochs` grow when the learning rate up to the old end
stays the same: the same schedule, or one with more `(multiplier, epoch)`
steps that start at or after the old last epoch.
"""

from __future__ import annotations

import json

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
        # checksums; the dataset's name or `prepared:` path is compared);
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
        "init_from",
        "head_init",
    }
)

# Fields compared only when the training uses them.
_TAU = "tau"

# How a field is named in the refusal: its flag, or the flags it is made of.
_FLAG_NAMES = {
    "schedule": "--warmup_epochs/--lr_decay_epochs/--lr_decay_multipliers",
}


def changed_fields(previous: dict, current: dict, loss_uses_tau: bool):
    """`{field: (old, new)}` of the fields of `current` that may not change.

    Args:
        previous, current: `RunConfig.to_dict()` of the run in the
            model_dir and of this invocation.
        loss_uses_tau: whether `--tau` enters the training loss.
    """
    return {
        key: (previous.get(key), value)
        for key, value in current.items()
        if key not in RESULT_NEUTRAL
        and (key != _TAU or loss_uses_tau)
        and previous.get(key) != value
    }


def extends(previous: dict, current: dict) -> bool:
    """Whether `current` trains `previous` further on the same schedule.

    True when `--epochs` grows and the learning rate of every step up to
    the old end is the same: the schedule's `(multiplier, start_epoch)`
    pairs are the old ones, followed by any that start at or after the old
    last epoch. (The schedule does not depend on `--epochs` once it is
    given; the data order is a function of (seed, epoch).)
    """
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
    grows = "epochs" in changed and changed["epochs"][1] > changed["epochs"][0]
    if grows and set(changed) == {"epochs"} and not extend:
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
