"""`RunConfig`: what a run is asked to do, before its defaults are resolved.

    from la_keras import runs

    config = runs.RunConfig(dataset="folder:/data/birds", model="mobilenet",
                            pretrained="mobilenet.h5", model_dir="/tmp/birds")
    config.epochs                 # None: the recipe's default, when resolved
    config.network.model          # "mobilenet": the same value, by its part

A `RunConfig` is frozen and checked when made: a bad value raises
`ValueError` in one line, as the flag of the same name does. Its fields are
grouped in parts (`la_keras.runs.parts`): `data`, `network`, `finetuning`,
`schedule`, `objective`, `output` and `runtime`. It is made from flat
keywords, one per `launch.train` flag, and remembers which were given:
the defaults of a recipe (LIFT's fine-tuning) apply to the others only.
`la_keras.runs.resolved.ResolvedConfig.resolve` turns it into the resolved
configuration a run records in flags.json.
"""

from __future__ import annotations

import dataclasses
import difflib

from la_keras.runs.parts import PARTS

# Field name -> the attribute of its part.
_FIELD_PART = {
    f.name: part
    for part, klass in PARTS.items()
    for f in dataclasses.fields(klass)
}


def fields():
    """Every field of every part, in flag order (`dataclasses.Field`s)."""
    return [f for klass in PARTS.values() for f in dataclasses.fields(klass)]


class RunConfig:
    """The options of a run, flat keywords grouped in frozen parts.

    Args:
        **values: one keyword per field (`fields()`; each is a flag of
            `launch.train`, with the same default and meaning), or a whole
            part by its attribute (`data=DataOptions(...)`).

    Raises:
        TypeError: an unknown keyword (the message names the closest).
        ValueError: a value its field refuses (one line).
    """

    __slots__ = (*PARTS, "given_fields")

    def __init__(self, **values):
        parts = {}
        given = set()
        for name, klass in PARTS.items():
            part = values.pop(name, None) or klass()
            if not isinstance(part, klass):
                raise TypeError(
                    f"RunConfig({name}=...) takes a {klass.__name__}."
                )
            given.update(
                f.name
                for f in dataclasses.fields(klass)
                if getattr(part, f.name) != f.default
            )
            parts[name] = part
        for key in values:
            if key not in _FIELD_PART:
                close = difflib.get_close_matches(key, list(_FIELD_PART), 1)
                hint = f"; did you mean {close[0]!r}?" if close else "."
                raise TypeError(
                    f"RunConfig got an unknown option {key!r}{hint}"
                )
        for name in PARTS:
            mine = {k: v for k, v in values.items() if _FIELD_PART[k] == name}
            parts[name] = dataclasses.replace(parts[name], **mine)
        given.update(values)
        for name, part in parts.items():
            object.__setattr__(self, name, part)
        object.__setattr__(self, "given_fields", frozenset(given))
        self._check()

    def _check(self) -> None:
        for f in fields():
            value = getattr(self, f.name)
            if isinstance(value, list):
                value = tuple(value)
                part = getattr(self, _FIELD_PART[f.name])
                object.__setattr__(part, f.name, value)
            choices = f.metadata["choices"]
            if choices and value not in choices:
                raise ValueError(
                    f"--{f.name}={value!r}: must be one of "
                    f"{', '.join(choices)}."
                )
            check = f.metadata["check"]
            message = check and check(f.name, value)
            if message:
                raise ValueError(message)

    def __getattr__(self, name):
        part = _FIELD_PART.get(name)
        if part is None:
            raise AttributeError(f"RunConfig has no option {name!r}.")
        return getattr(getattr(self, part), name)

    def __setattr__(self, name, value):
        raise dataclasses.FrozenInstanceError(
            f"RunConfig is frozen: use config.replace({name}=...)."
        )

    def __eq__(self, other):
        return (
            isinstance(other, RunConfig) and self.to_dict() == other.to_dict()
        )

    def __hash__(self):
        return hash(tuple(getattr(self, part) for part in PARTS))

    def __repr__(self):
        given = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields()
            if f.name in self.given_fields
        )
        return f"RunConfig({given})"

    def is_given(self, name: str) -> bool:
        """Whether field `name` was given (else its default applies)."""
        return name in self.given_fields

    def replace(self, **changes) -> RunConfig:
        """A copy with fields changed by name; they count as given."""
        values = {k: getattr(self, k) for k in self.given_fields}
        return RunConfig(**values, **changes)

    def to_dict(self) -> dict:
        """`{field: value}` of every field."""
        return {f.name: getattr(self, f.name) for f in fields()}

    def flag_lines(self) -> list[str]:
        """The given fields as `launch.train` flags (flags.txt: a
        --flagfile that repeats the run)."""
        lines = []
        for f in fields():
            value = getattr(self, f.name)
            if f.name not in self.given_fields or value is None:
                continue
            if isinstance(value, bool):
                lines.append(f"--{'' if value else 'no'}{f.name}")
            elif isinstance(value, (tuple, list)):
                lines.append(f"--{f.name}={','.join(str(v) for v in value)}")
            else:
                lines.append(f"--{f.name}={value}")
        return lines

    @classmethod
    def from_flags(cls, flag_values) -> RunConfig:
        """The config of absl flags named as the fields (`launch.train`'s):
        the flags given (on the command line, in a flagfile, or set in code)
        are the given fields."""
        values = {}
        for f in fields():
            flag = flag_values[f.name]
            if not flag.using_default_value:
                values[f.name] = flag.value
        return cls(**values)
