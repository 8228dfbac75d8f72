"""`option`: a `RunConfig` field with its help, choices and check.

Each field of a part is one flag of `launch.train` with the same name,
default and help (`launch/flags.py` defines them from these fields). The
check of a field runs when a `RunConfig` is made and when the flag is
parsed, so both refuse a bad value with the same one-line message.
"""

from __future__ import annotations

import dataclasses
import math


def option(default, help, *, choices=None, kind=None, check=None, more=None):
    """A dataclass field of a `RunConfig` part.

    Args:
        default: its value when not given.
        help: what it means (the flag's help).
        choices: the values it may take (an enum flag).
        kind: "list" for a comma-separated list flag; else from the default.
        check: `check(name, value) -> message or None`.
        more: `more() -> str`, help text computed when the flag is defined
            (a registry's current names).
    """
    return dataclasses.field(
        default=default,
        metadata={
            "help": help,
            "choices": choices,
            "kind": kind,
            "check": check,
            "more": more,
        },
    )


def _finite(value) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def at_least(
    low, *, optional=False, finite=False, strict=False, what=None, note=""
):
    """A check that the value is >= low (> low when `strict`).

    Its message: "--NAME must be [WHAT ]>= LOW[NOTE].", where WHAT defaults
    to "a finite float" when `finite`.
    """
    if what is None and finite:
        what = "a finite float"

    def check(name, value):
        if value is None and optional:
            return None
        ok = value is not None and (_finite(value) or not finite)
        if ok:
            ok = value > low if strict else value >= low
        if ok:
            return None
        sign = ">" if strict else ">="
        what_ = f"{what} " if what else ""
        return f"--{name} must be {what_}{sign} {low}{note}."

    return check


NONNEGATIVE = at_least(0, finite=True)
POSITIVE = at_least(1)


def fraction(name, value):
    if value is None or (_finite(value) and 0.0 <= value < 1.0):
        return None
    return f"--{name} must be in [0, 1)."


def nonnegative_floats(name, values):
    try:
        ok = len(values) > 0 and all(
            _finite(v) and float(v) >= 0 for v in values
        )
    except TypeError:
        ok = False
    if ok:
        return None
    return f"--{name} must be a non-empty list of finite floats >= 0."
