"""A check of integer arguments shared by the dataset modules."""

from __future__ import annotations

import numbers


def is_int_at_least(value, minimum: int) -> bool:
    """Whether `value` is an integer, not a bool, and at least `minimum`."""
    return (
        isinstance(value, numbers.Integral)
        and not isinstance(value, bool)
        and value >= minimum
    )
