"""Argument checks shared by the statistics modules; every message names the argument."""

from __future__ import annotations

import math
import numbers
import operator


def probability(value: float, name: str) -> float:
    """Return ``value`` as a float if it lies strictly inside (0, 1)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"`{name}` must be a number in (0, 1) (got {value!r})")
    result = float(value)
    if not 0.0 < result < 1.0:
        raise ValueError(f"`{name}` must be in (0, 1) (got {result!r})")
    return result


def count(value: int, name: str, *, minimum: int = 0) -> int:
    """Return ``value`` as an int if it is an integer (numpy integers included) >= ``minimum``."""
    if isinstance(value, bool):
        raise TypeError(f"`{name}` must be an integer (got {value!r})")
    try:
        result = operator.index(value)
    except TypeError:
        raise TypeError(f"`{name}` must be an integer (got {value!r})") from None
    if result < minimum:
        raise ValueError(f"`{name}` must be at least {minimum} (got {result})")
    return result


def finite(value: float, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number."""
    if isinstance(value, bool | str | bytes):
        raise TypeError(f"`{name}` must be a finite number (got {value!r})")
    try:
        result = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a finite number (got {value!r})") from None
    if not math.isfinite(result):
        raise ValueError(f"`{name}` must be finite (got {result})")
    return result
