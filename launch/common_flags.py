"""The flags of `launch.train`, one per field of `la_keras.runs.RunConfig`.

Each flag has its field's name, default, help and check; the official
release's flags (google-research `logit_adjustment/main.py`) keep their
names, defaults and meaning. Flags are declared by `define_flags()`, not at
import, so tests and other entry points can import this module freely.

Relative paths (`--data_home`, `--tb_log_dir`, `--model_dir`) are relative to
the working directory; the outputs default to folders inside `--model_dir`.
"""

from __future__ import annotations

from absl import flags

from la_keras.runs import run_config

_DEFINE = {
    int: flags.DEFINE_integer,
    float: flags.DEFINE_float,
    bool: flags.DEFINE_bool,
    str: flags.DEFINE_string,
}
_TYPES = {"int": int, "float": float, "bool": bool, "str": str}


def define_flags(flag_values=flags.FLAGS) -> None:
    """Declares the training flags in `flag_values` (idempotent)."""
    if "train_batch_size" in flag_values:
        return
    for field in run_config.fields():
        _define(field, flag_values)


def _define(field, flag_values) -> None:
    meta = field.metadata
    help_text = meta["help"] + (meta["more"]() if meta["more"] else "")
    default = field.default
    if meta["choices"]:
        flags.DEFINE_enum(
            field.name,
            default,
            list(meta["choices"]),
            help_text,
            flag_values=flag_values,
        )
    elif meta["kind"] == "list":
        default = None if default is None else [str(v) for v in default]
        flags.DEFINE_list(
            field.name, default, help_text, flag_values=flag_values
        )
    else:
        kind = _TYPES[str(field.type).split(" |")[0]]
        _DEFINE[kind](field.name, default, help_text, flag_values=flag_values)
    check = meta["check"]
    if check:
        flags.register_validator(
            field.name, _validator(field.name, check), flag_values=flag_values
        )


def _validator(name, check):
    def validate(value):
        message = check(name, value)
        if message:
            raise flags.ValidationError(message)
        return True

    return validate
