"""Fixed-horizon comparison of a treatment arm with control: Welch's t-test and relative lift.

These p-values and intervals are valid for ONE look at a sample size fixed in advance. Looking
repeatedly and stopping at the first ``p < alpha`` inflates the false-positive rate several-fold
(the A/A simulation in ``tests/experiments`` shows it); verdicts on a watched experiment come from
:mod:`experiments.stats.sequential` instead.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from experiments.stats import _checks, _distributions
from experiments.stats.intervals import Interval
from experiments.stats.moments import Moments

__all__ = ["Comparison", "welch_test"]


@dataclass(frozen=True, slots=True)
class Comparison:
    """Treatment minus control, with fixed-horizon inference.

    Attributes
    ----------
    difference : float
        ``mean_treatment - mean_control`` (absolute lift, in the metric's units).
    difference_ci : Interval
        Welch t interval for the difference.
    relative_lift : float or None
        ``difference / mean_control``; None when the control mean is 0.
    relative_lift_ci : Interval or None
        Delta-method normal interval for the relative lift; None when the control mean is 0.
    t_statistic : float
        ``difference / standard_error``.
    df : float
        Welch–Satterthwaite degrees of freedom.
    p_value : float
        Two-sided p-value of Welch's t-test of equal means.
    """

    difference: float
    difference_ci: Interval
    relative_lift: float | None
    relative_lift_ci: Interval | None
    t_statistic: float
    df: float
    p_value: float


def welch_test(control: Moments, treatment: Moments, *, alpha: float = 0.05) -> Comparison:
    """Compare two arms' means with Welch's unequal-variance t-test.

    With ``a = s_c**2 / n_c`` and ``b = s_t**2 / n_t`` the standard error of the difference is
    ``sqrt(a + b)`` and the degrees of freedom are the Welch–Satterthwaite approximation
    ``(a + b)**2 / (a**2 / (n_c - 1) + b**2 / (n_t - 1))`` (Welch 1947, Satterthwaite 1946). This
    equals ``scipy.stats.ttest_ind(treatment, control, equal_var=False)``.

    The relative lift ``r = m_t / m_c - 1`` gets a delta-method interval
    ``r ± z_{1-alpha/2} * sqrt(b / m_c**2 + m_t**2 * a / m_c**4)`` (Deng, Knoblich & Lu 2018,
    "Applying the Delta Method in Metric Analytics", KDD), which assumes the control mean is
    estimated well away from 0.

    Parameters
    ----------
    control, treatment : Moments
        Sufficient statistics of each arm; each needs ``n >= 2``.
    alpha : float
        Two-sided significance level; intervals have level ``1 - alpha``.

    Returns
    -------
    Comparison

    Raises
    ------
    ValueError
        If an arm has fewer than 2 observations, or both arms have zero variance (the difference
        then has no standard error and no test is defined).
    """
    alpha = _checks.probability(alpha, "alpha")
    _require_two(control, "control")
    _require_two(treatment, "treatment")
    var_c = control.variance / control.n
    var_t = treatment.variance / treatment.n
    se = math.sqrt(var_c + var_t)
    if se == 0:
        raise ValueError(
            "`control` and `treatment` both have zero variance, "
            "so the difference has no standard error"
        )
    df = (var_c + var_t) ** 2 / (var_c**2 / (control.n - 1) + var_t**2 / (treatment.n - 1))
    difference = treatment.mean - control.mean
    t_statistic = difference / se
    p_value = 2 * _distributions.t_sf(abs(t_statistic), df)
    half_width = _distributions.t_quantile(1 - alpha / 2, df) * se
    difference_ci = Interval(difference - half_width, difference + half_width, 1 - alpha)

    relative_lift: float | None = None
    relative_ci: Interval | None = None
    if control.mean != 0:
        relative_lift = difference / control.mean
        ratio = treatment.mean / control.mean
        relative_se = math.sqrt(var_t + ratio * ratio * var_c) / abs(control.mean)
        relative_half = _distributions.normal_quantile(1 - alpha / 2) * relative_se
        relative_ci = Interval(
            relative_lift - relative_half, relative_lift + relative_half, 1 - alpha
        )

    return Comparison(
        difference=difference,
        difference_ci=difference_ci,
        relative_lift=relative_lift,
        relative_lift_ci=relative_ci,
        t_statistic=t_statistic,
        df=df,
        p_value=p_value,
    )


def _require_two(moments: Moments, name: str) -> None:
    if moments.n < 2:
        raise ValueError(f"`{name}` needs at least 2 observations (got n={moments.n})")
