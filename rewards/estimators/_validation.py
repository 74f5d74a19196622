"""Input checks shared by the estimators. Every message names the offending argument."""

from __future__ import annotations

import math
from typing import SupportsFloat

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def fmt(value: float) -> str:
    """Short, stable rendering of a number inside an error message."""
    return f"{value:.6g}"


def real(name: str, value: SupportsFloat) -> float:
    """``value`` as a finite float."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a real number (got {value!r})") from None
    if not math.isfinite(x):
        raise ValueError(f"`{name}` must be finite (got {fmt(x)})")
    return x


def column(name: str, values: npt.ArrayLike, *, like: FloatArray | None = None) -> FloatArray:
    """``values`` as a finite 1-D float64 array, of the same shape as ``like`` when given."""
    try:
        array = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be an array of real numbers") from None
    if array.ndim != 1:
        raise ValueError(f"`{name}` must be 1-D (got shape {array.shape})")
    if like is not None and array.shape != like.shape:
        raise ValueError(
            f"`{name}` must have the shape of `p_log` {like.shape} (got {array.shape})"
        )
    bad = ~np.isfinite(array)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"`{name}` must be finite (got {fmt(array[i])} at index {i})")
    return array


def in_interval(
    name: str,
    values: FloatArray,
    low: float,
    high: float,
    *,
    open_low: bool = False,
) -> None:
    """Check ``low <(=) values <= high`` and report the index of the first offender."""
    bad = ((values <= low) if open_low else (values < low)) | (values > high)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        bracket = "(" if open_low else "["
        raise ValueError(
            f"`{name}` must be in {bracket}{fmt(low)}, {fmt(high)}] "
            f"(got {fmt(values[i])} at index {i})"
        )


def probability_range(name: str, value: float, *, open_low: bool) -> None:
    """Scalar form of :func:`in_interval` on ``[0, 1]`` or ``(0, 1]``."""
    if (value <= 0.0 if open_low else value < 0.0) or value > 1.0:
        bracket = "(" if open_low else "["
        raise ValueError(f"`{name}` must be in {bracket}0, 1] (got {fmt(value)})")


def alpha(value: float) -> float:
    a = real("alpha", value)
    if not 0.0 < a < 1.0:
        raise ValueError(f"`alpha` must be in (0, 1) (got {fmt(a)})")
    return a


def reward_range(value: tuple[float, float] | None) -> tuple[float, float] | None:
    if value is None:
        return None
    try:
        low, high = value
    except (TypeError, ValueError):
        raise TypeError(f"`reward_range` must be a pair (low, high) (got {value!r})") from None
    lo, hi = real("reward_range", low), real("reward_range", high)
    if not lo < hi:
        raise ValueError(f"`reward_range` must have low < high (got ({fmt(lo)}, {fmt(hi)}))")
    return lo, hi


def bounded_below(name: str, value: float, minimum: float, *, inclusive: bool = False) -> float:
    """``value`` as a float ``> minimum`` (``>=`` when ``inclusive``); ``inf`` is allowed."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must be a real number (got {value!r})") from None
    ok = x >= minimum if inclusive else x > minimum
    if math.isnan(x) or not ok:
        op = ">=" if inclusive else ">"
        raise ValueError(f"`{name}` must be {op} {fmt(minimum)} (got {fmt(x)})")
    return x
