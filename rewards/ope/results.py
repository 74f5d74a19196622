"""What an evaluation run returns: per policy, estimates, diagnostics, verdict, reward over time.

**Verdict** (Personalizer's auto-optimize rule): a candidate is recommended only if its mean
beats the online policy's and its lower 95% bound is above the online policy's lower bound, on
the ``verdict_estimator`` (IPS by default) with Gaussian intervals.

These are domain records; their wire form (JSON, NaN as null) is `api`'s concern.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from rewards.estimators import Interval, diagnostics

EstimatorName = Literal["ips", "snips", "dr"]
ESTIMATORS: tuple[EstimatorName, ...] = ("ips", "snips", "dr")
SECOND_INTERVAL = {"ips": "cressie_read", "snips": "cressie_read", "dr": "bernstein"}
"""The interval reported beside the Gaussian one, per estimator."""


@dataclass(frozen=True, slots=True)
class EstimatorResult:
    """One estimator's estimate of one policy, with both of its intervals."""

    estimator: EstimatorName
    value: float
    gaussian: Interval
    second: Interval
    second_method: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """``recommended`` is None for the online policy itself."""

    recommended: bool | None
    reason: str


@dataclass(frozen=True, slots=True)
class Bucket:
    """One time bucket (an hour unless the run said otherwise; UTC) of a policy's IPS terms
    ``w·r``: their count, sum and sum of squares.

    Their mean is the bucket's IPS estimate; buckets merge by adding fields
    (:mod:`rewards.ope.timeseries`).
    """

    start: datetime
    n: int
    total: float
    squares: float


@dataclass(frozen=True, slots=True)
class PolicyResult:
    name: str
    kind: str
    estimates: tuple[EstimatorResult, ...]
    diagnostics: diagnostics.Report
    verdict: Verdict
    over_time: tuple[Bucket, ...] = ()
    """IPS terms per bucket, oldest first; events without a timestamp are left out."""

    def estimate(self, estimator: EstimatorName) -> EstimatorResult:
        return next(e for e in self.estimates if e.estimator == estimator)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The result of one evaluation run over `n` logged events."""

    n: int
    surface: str | None
    model_key: str | None
    start: datetime | None
    end: datetime | None
    alpha: float
    reward_range: tuple[float, float]
    max_weight: float
    reward_model: str
    verdict_estimator: EstimatorName
    policies: tuple[PolicyResult, ...]
    seconds: float
    bucket_seconds: int = 3600
    """The width of every policy's `over_time` buckets."""

    def policy(self, name: str) -> PolicyResult:
        return next(p for p in self.policies if p.name == name)

    @property
    def recommended(self) -> list[str]:
        """Candidates that pass the verdict rule, best mean first."""
        passing = [p for p in self.policies if p.verdict.recommended]
        passing.sort(key=lambda p: -p.estimate(self.verdict_estimator).value)
        return [p.name for p in passing]


def verdict(candidate: EstimatorResult, online: EstimatorResult) -> Verdict:
    """Personalizer's auto-optimize rule on one estimator's Gaussian intervals."""
    if not math.isfinite(candidate.value):
        return Verdict(False, "no estimate (the policy never agreed with the log)")
    beats_mean = candidate.value > online.value
    beats_low = candidate.gaussian.low > online.gaussian.low
    what = (
        f"{candidate.estimator} {candidate.value:.4f} vs online {online.value:.4f}; "
        f"lower bound {candidate.gaussian.low:.4f} vs {online.gaussian.low:.4f}"
    )
    if beats_mean and beats_low:
        return Verdict(True, f"beats the online policy: {what}")
    if not beats_mean:
        return Verdict(False, f"mean does not beat the online policy: {what}")
    return Verdict(False, f"lower bound not above the online policy's: {what}")
