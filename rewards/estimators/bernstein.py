"""Empirical-Bernstein confidence intervals for the mean of bounded i.i.d. terms.

Maurer & Pontil (2009), "Empirical Bernstein bounds and sample variance penalization", COLT,
Theorem 4: for i.i.d. ``X_i`` in ``[0, 1]``, ``n >= 2`` and ``δ > 0``, with probability at least
``1 - δ``

    E[X] - mean(X) <= sqrt(2 · s² · ln(2/δ) / n) + 7 · ln(2/δ) / (3 · (n - 1)),

where ``s²`` is the unbiased sample variance. Rescaling to a term range ``[a, b]`` multiplies the
second (range) term by ``b - a``; applying the bound to both tails with ``δ = alpha / 2`` each gives
a two-sided ``1 - alpha`` interval.

Assumption: the range ``[a, b]`` must hold for every term *a priori*. For importance-weighted
terms it follows from a known reward range and a known largest importance weight, e.g.
``1 / min_propensity`` of an epsilon-greedy logging policy; an empirical maximum is not a valid
substitute. The interval is finite-sample valid (not asymptotic), hence wider than the Gaussian one.
"""

from __future__ import annotations

import math

from rewards.estimators import _validation as check
from rewards.estimators.results import Interval


def half_width(variance: float, n: int, span: float, alpha: float) -> float:
    """The two-sided Maurer-Pontil half-width.

    Parameters
    ----------
    variance
        Unbiased sample variance ``s²`` of the terms.
    n
        Number of terms, ``>= 2``.
    span
        ``b - a``, the width of the a-priori range of one term.
    alpha
        Miscoverage level, in (0, 1).
    """
    log_term = math.log(4.0 / check.alpha(alpha))
    return math.sqrt(2.0 * max(variance, 0.0) * log_term / n) + 7.0 * span * log_term / (
        3.0 * (n - 1)
    )


def interval(
    mean: float,
    variance: float,
    n: int,
    *,
    term_range: tuple[float, float],
    alpha: float = 0.05,
    clip: tuple[float, float] | None = None,
) -> Interval:
    """Empirical-Bernstein interval for ``E[X]`` from the sample mean and variance.

    Parameters
    ----------
    mean, variance
        Sample mean and unbiased sample variance of the ``n`` terms.
    n
        Number of terms; below 2 the interval is ``clip`` (or the term range).
    term_range
        ``(a, b)``: every term lies in ``[a, b]`` by assumption.
    alpha
        Miscoverage level, in (0, 1).
    clip
        A range known to contain ``E[X]`` (e.g. the reward range for an unbiased estimator);
        the interval is intersected with it. Defaults to ``term_range``.
    """
    low, high = clip if clip is not None else term_range
    if n < 2:
        return Interval(low, high)
    half = half_width(variance, n, term_range[1] - term_range[0], alpha)
    return Interval(max(low, mean - half), min(high, mean + half))
