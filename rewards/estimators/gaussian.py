"""Normal-approximation (CLT / delta-method) confidence intervals.

The estimators here are means, or smooth functions of means, of i.i.d. per-event terms, so
``(V̂ - V) / se`` is asymptotically standard normal. The standard error comes from the sample
variance of the per-event term (or of its influence function for the self-normalized ratios).
Coverage is asymptotic only: with heavy-tailed importance weights and small ``n`` it can fall
short, which is when the Cressie-Read or empirical-Bernstein intervals earn their width.

Reference: A. W. van der Vaart (1998), *Asymptotic Statistics*, Cambridge University Press,
ch. 2-3 (central limit theorem and delta method).
"""

from __future__ import annotations

import math
from statistics import NormalDist

from rewards.estimators import _validation as check
from rewards.estimators.results import Interval


def z(alpha: float) -> float:
    """The two-sided standard-normal critical value ``Φ⁻¹(1 - alpha / 2)``."""
    return NormalDist().inv_cdf(1.0 - check.alpha(alpha) / 2.0)


def interval(center: float, variance: float, alpha: float = 0.05) -> Interval:
    """``center ± z(alpha) · sqrt(variance)``.

    Parameters
    ----------
    center
        The point estimate.
    variance
        The estimated variance of ``center`` (not of one event: already divided by ``n``).
        ``nan`` or ``inf`` means unknown and gives ``(-inf, inf)``.
    alpha
        Miscoverage level, in (0, 1).
    """
    half = z(alpha) * math.sqrt(max(variance, 0.0)) if math.isfinite(variance) else math.inf
    if not (math.isfinite(center) and math.isfinite(half)):
        return Interval(-math.inf, math.inf)
    return Interval(center - half, center + half)
