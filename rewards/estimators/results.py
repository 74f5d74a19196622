"""Frozen result records returned by every estimator: intervals, estimates, weight summaries."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

IntervalMethod = Literal["gaussian", "bernstein", "cressie_read"]
"""Interval kinds computed from streaming state; the bootstrap needs the events themselves."""


@dataclass(frozen=True, slots=True)
class Interval:
    """A two-sided confidence interval ``[low, high]``.

    Bounds may be infinite when the data cannot bound the value (fewer than two events).
    """

    low: float
    high: float

    @property
    def width(self) -> float:
        return self.high - self.low

    def __contains__(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True, slots=True)
class WeightSummary:
    """Importance-weight diagnostics over the events seen, with ``w = p_target / p_log``.

    Attributes
    ----------
    n
        Number of events.
    ess
        Kish effective sample size ``(Σw)² / Σw²``; ``nan`` when every weight is 0.
    min, max
        Smallest and largest raw weight (``nan`` when ``n == 0``).
    mean
        ``Σw / n``. Its expectation is 1 when the logged propensities are right and the logging
        policy covers the target's support, so a mean far from 1 flags a logging or overlap problem.
    """

    n: int
    ess: float
    min: float
    max: float
    mean: float

    @classmethod
    def from_sums(
        cls, *, n: int, sum_w: float, sum_w2: float, w_min: float, w_max: float
    ) -> WeightSummary:
        """Build the summary from ``Σw``, ``Σw²`` and the extremes (``±inf`` when empty)."""
        if n == 0:
            return cls(n=0, ess=math.nan, min=math.nan, max=math.nan, mean=math.nan)
        ess = sum_w * sum_w / sum_w2 if sum_w2 > 0.0 else math.nan
        return cls(n=n, ess=ess, min=w_min, max=w_max, mean=sum_w / n)

    @property
    def ess_ratio(self) -> float:
        """``ess / n``: 1 when the target policy equals the logging policy."""
        return self.ess / self.n if self.n else math.nan


@dataclass(frozen=True, slots=True)
class Estimate:
    """A point estimate of a target policy's value with its confidence interval.

    Attributes
    ----------
    value
        The point estimate (``nan`` when no event was added).
    ci
        The ``1 - alpha`` confidence interval.
    n
        Number of events behind the estimate.
    alpha
        Miscoverage level of ``ci``.
    method
        How ``ci`` was computed: ``"gaussian"``, ``"bernstein"``, ``"cressie_read"`` or
        ``"bootstrap"``.
    weights
        Importance-weight diagnostics of the same events.
    """

    value: float
    ci: Interval
    n: int
    alpha: float
    method: str
    weights: WeightSummary
