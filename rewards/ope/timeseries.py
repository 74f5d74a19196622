r"""A policy's estimated reward over time, from the buckets of an evaluation run.

An evaluation run sums each policy's IPS terms ``t = w·r`` per time bucket
(:attr:`rewards.ope.results.PolicyResult.over_time`: count, ``Σt``, ``Σt²``). Buckets of
disjoint periods merge by adding those sums, so any coarser series is exact: the points of a
series are intervals of a whole number of buckets, each with the IPS estimate

.. math:: \hat V = \frac{1}{n} \sum t_i, \qquad
          \widehat{\mathrm{Var}}(\hat V) = \frac{\sum t_i^2 - (\sum t_i)^2 / n}{(n - 1)\, n}

and its Gaussian interval, exactly as :class:`rewards.estimators.ips.Estimator` computes them
over the same events. ``expanding`` points cover everything from the series' start to the end
of their interval; ``rolling`` points their own interval only.

Reference: A. W. van der Vaart (1998), *Asymptotic Statistics*, ch. 2 (the CLT behind the
interval).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

from rewards.estimators import Interval, gaussian
from rewards.estimators.base import mean_variance
from rewards.ope.errors import EvaluationError
from rewards.ope.results import Bucket

Window = Literal["expanding", "rolling"]
MAX_POINTS = 10_000
"""A series longer than this is refused: the interval is too short for the range."""


@dataclass(frozen=True, slots=True)
class Point:
    """One interval of a series: it starts at `start`; `value` is NaN without events."""

    start: datetime
    n: int
    value: float
    interval: Interval


def estimate(n: int, total: float, squares: float, alpha: float = 0.05) -> tuple[float, Interval]:
    """The IPS estimate of `n` terms with sum `total` and sum of squares `squares`, and its
    Gaussian ``1 - alpha`` interval (unbounded below two terms; NaN without any)."""
    if n == 0:
        return math.nan, Interval(-math.inf, math.inf)
    value = total / n
    if n < 2:
        return value, Interval(-math.inf, math.inf)
    return value, gaussian.interval(value, mean_variance(total, squares, n), alpha)


def _floor(moment: datetime, seconds: int) -> datetime:
    epoch = int(moment.astimezone(UTC).timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def series(
    buckets: Iterable[Bucket],
    *,
    bucket_seconds: int,
    start: datetime,
    end: datetime,
    interval_seconds: int,
    window: Window = "expanding",
    alpha: float = 0.05,
) -> tuple[Point, ...]:
    """Points every `interval_seconds` over [start, end), from buckets `bucket_seconds` wide.

    Parameters
    ----------
    buckets
        A policy's buckets, each aligned on a multiple of `bucket_seconds` since the epoch.
    start, end
        The range; `start` is rounded down to a bucket boundary (a bucket is never split).
    interval_seconds
        A whole multiple of `bucket_seconds`.
    window
        ``expanding``: each point from `start` to the end of its interval; ``rolling``: its
        interval alone.

    Raises
    ------
    EvaluationError
        When `interval_seconds` is not a positive multiple of `bucket_seconds`, when `start` is
        not before `end`, or when the series would have more than :data:`MAX_POINTS` points.
    """
    if interval_seconds <= 0 or interval_seconds % bucket_seconds:
        raise EvaluationError(
            f"`interval` must be a whole number of buckets of {bucket_seconds // 60} minutes "
            f"(got {interval_seconds // 60} minutes)",
            target="interval",
        )
    if start >= end:
        raise EvaluationError(f"`start` ({start.isoformat()}) must be before `end`", target="start")
    first = _floor(start, bucket_seconds)
    count = math.ceil((end - first).total_seconds() / interval_seconds)
    if count > MAX_POINTS:
        raise EvaluationError(
            f"`interval` of {interval_seconds // 60} minutes makes {count} points over the "
            f"range; at most {MAX_POINTS}",
            target="interval",
        )
    sums = [[0, 0.0, 0.0] for _ in range(count)]
    for b in buckets:
        if not first <= b.start < end:
            continue
        slot = sums[int((b.start - first).total_seconds()) // interval_seconds]
        slot[0] += b.n
        slot[1] += b.total
        slot[2] += b.squares
    points = []
    n, total, squares = 0, 0.0, 0.0
    for i, (bn, bt, bs) in enumerate(sums):
        if window == "expanding":
            n, total, squares = n + int(bn), total + bt, squares + bs
        else:
            n, total, squares = int(bn), bt, bs
        value, ci = estimate(n, total, squares, alpha)
        points.append(Point(first + timedelta(seconds=i * interval_seconds), n, value, ci))
    return tuple(points)


def overall(
    buckets: Iterable[Bucket], *, start: datetime, end: datetime, alpha: float = 0.05
) -> tuple[int, float, Interval]:
    """The count, IPS estimate and Gaussian interval over the buckets starting in [start, end)."""
    n, total, squares = 0, 0.0, 0.0
    for b in buckets:
        if start <= b.start < end:
            n, total, squares = n + b.n, total + b.total, squares + b.squares
    value, ci = estimate(n, total, squares, alpha)
    return n, value, ci
