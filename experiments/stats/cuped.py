"""CUPED: variance reduction with a pre-experiment covariate.

Deng, Xu, Kohavi & Walker (2013), "Improving the Sensitivity of Online Controlled Experiments by
Utilizing Pre-Experiment Data", WSDM. Each unit's in-experiment metric ``Y`` is replaced by

    Y_cv = Y - theta * (X - mean_X)

where ``X`` is the same unit's pre-experiment value and ``mean_X`` the covariate's mean over all
arms. A unit without history takes the pooled pre-period mean as its ``X`` (as
:mod:`experiments.results` does), which leaves its own metric unadjusted. ``X`` is measured before
assignment, so it is independent of the arm: the adjusted difference between arms estimates the
same effect as the raw one (the ``theta * (mean_X_t - mean_X_c)`` term has expectation 0), while
its variance shrinks by the factor ``1 - rho**2`` for correlation ``rho`` between ``X`` and ``Y``.

``theta`` is pooled across arms as the within-arm regression slope
``theta = sum_k S_xy,k / sum_k S_xx,k`` (``S`` are sums of centered cross-products within arm
``k``): the coefficient of ``X`` in the regression ``Y ~ arm + X``, and the minimizer of the pooled
adjusted variance. Deng et al. compute ``cov(X, Y) / var(X)`` on all units pooled together; the two
differ only by a between-arm term of relative order ``1 / sqrt(n)``, and centering within arms
keeps the treatment effect itself out of ``theta``. The variances reported treat ``theta`` and
``mean_X`` as constants, as Deng et al. do; ``mean_X`` is common to all arms and cancels from
every difference.

Everything is computed from :class:`JointMoments`, so the adjusted metric comes back as ordinary
:class:`Moments` per arm, and every other test in :mod:`experiments.stats` runs on it unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from experiments.stats.moments import JointMoments, Moments

__all__ = ["CupedResult", "cuped_adjust"]


@dataclass(frozen=True, slots=True)
class CupedResult:
    """CUPED adjustment of each arm, in the order the arms were given.

    Attributes
    ----------
    theta : float
        Pooled within-arm slope of the metric on the covariate.
    covariate_mean : float
        Mean of the covariate over all arms, the centering constant ``mean_X``.
    adjusted : tuple of Moments
        Sufficient statistics of ``Y_cv = Y - theta * (X - mean_X)`` per arm. Their means are the
        adjusted means; their variances ``var(Y) - 2 theta cov(X, Y) + theta**2 var(X)``, so the
        variance of arm ``k``'s adjusted mean is ``adjusted[k].variance / adjusted[k].n``.
    variance_reduction : tuple of float
        ``1 - var(Y_cv) / var(Y)`` per arm (0 when the arm's metric has no variance).
    """

    theta: float
    covariate_mean: float
    adjusted: tuple[Moments, ...]
    variance_reduction: tuple[float, ...]


def cuped_adjust(arms: Sequence[JointMoments]) -> CupedResult:
    """CUPED-adjust every arm's metric with a pooled ``theta``.

    Parameters
    ----------
    arms : sequence of JointMoments, length k >= 1
        Per arm: covariate ``x`` (pre-period) and metric ``y`` (in-experiment) sufficient
        statistics. At least one arm needs ``n >= 2``.

    Returns
    -------
    CupedResult
        ``theta`` is 0 (no adjustment) when the covariate does not vary within any arm, e.g. when
        no unit has pre-experiment data.
    """
    if len(arms) == 0:
        raise ValueError("`arms` must not be empty")
    for i, arm in enumerate(arms):
        if not isinstance(arm, JointMoments):
            raise TypeError(f"`arms[{i}]` must be JointMoments (got {type(arm).__name__})")
    total_n = sum(arm.n for arm in arms)
    if all(arm.n < 2 for arm in arms):
        raise ValueError("`arms` needs an arm with at least 2 units to estimate theta")

    centered = [arm.centered() for arm in arms]
    s_xx = sum(c[0] for c in centered)
    s_xy = sum(c[2] for c in centered)
    theta = s_xy / s_xx if s_xx > 0 else 0.0
    mean_x = sum(arm.sum_x for arm in arms) / total_n

    adjusted: list[Moments] = []
    reduction: list[float] = []
    for arm, (sxx, syy, sxy) in zip(arms, centered, strict=True):
        if arm.n == 0:
            adjusted.append(Moments(0, 0.0, 0.0))
            reduction.append(0.0)
            continue
        total = arm.sum_y - theta * (arm.sum_x - arm.n * mean_x)
        # Build the second moment from centered sums: expanding sum(Y_cv**2) over raw sums would
        # cancel digits twice over.
        centered_ss = max(syy - 2 * theta * sxy + theta * theta * sxx, 0.0)
        adjusted.append(Moments(arm.n, total, centered_ss + total * total / arm.n))
        reduction.append(1 - centered_ss / syy if syy > 0 else 0.0)
    return CupedResult(theta, mean_x, tuple(adjusted), tuple(reduction))
