r"""Cressie-Read (CR(-2), i.e. χ²) empirical-likelihood intervals for a target policy's value.

The value ``V = E[w · r]`` is bounded using only two facts: importance weights have mean one,
``E[w] = 1``, and rewards lie in a known range ``[r_min, r_max]``. Reweight the ``n`` logged events,
plus one *phantom* event of weight ``w_f`` (it stands for the part of the target's support the log
has not shown yet), with probabilities ``q``; among reweightings with ``Σ q w = 1`` that stay in a
Cressie-Read divergence ball around the uniform one, the smallest and largest ``Σ q w r`` are the
interval's ends. The phantom's reward is set to the bound being computed (``r_min`` for the lower
end), its weight to either end of the weight range ``[w_min, w_max]``, keeping the worse.

With the CR(-2) divergence ``½ · mean(u²)``, ``q_i = (1 + u_i) / m`` over ``m = n + 1`` points, the
problem is a linear objective over an ellipsoid cut by two linear constraints, so each end has a
closed form. Write ``h_i = w_i (r_i - r₀)`` for the anchor ``r₀`` (the phantom has ``h = 0``); then
``V = r₀ + Σ q_i h_i`` and, with population moments over the ``m`` points,

    V_lower = r₀ + h̄ + (1 - w̄)·Cov(w, h)/Var(w)
              - sqrt((ρ - (1 - w̄)²/Var(w)) · (Var(h) - Cov(w, h)²/Var(w)))

(``+`` for the upper end). The radius is the profile divergence of the reweighting closest to
uniform plus the ``1 - alpha`` quantile of ``F(1, n)`` divided by ``m``: the Bartlett-corrected
calibration of the empirical-likelihood ratio. ``w_f → ∞`` has its own limit (the phantom absorbs
the weight constraint at vanishing mass). No normality is assumed, so the interval stays honest
with heavy-tailed weights and small ``n``, and it never leaves ``[r_min, r_max]``.

References
----------
N. Cressie & T. R. C. Read (1984), "Multinomial goodness-of-fit tests", JRSS B 46(3).
N. Karampatziakis, J. Langford & P. Mineiro (2020), "Empirical likelihood for contextual bandits",
NeurIPS.
N. Karampatziakis, P. Mineiro & A. Ramdas (2021), off-policy intervals with the CR(-2) dual, as
implemented in VowpalWabbit/estimators (``cressieread.py``), whose interface this module mirrors.
"""

from __future__ import annotations

import math

from scipy import special

from rewards.estimators import _validation as check
from rewards.estimators.results import Interval


def _profile_divergence(n: int, sum_w: float, sum_w2: float, w_fake: float) -> float:
    """Smallest ``mean(u²)`` meeting ``Σ q w = 1`` with the phantom at ``w_fake``."""
    if math.isinf(w_fake):
        return 1.0 / n
    m = n + 1
    mean_w = (sum_w + w_fake) / m
    var_w = (sum_w2 + w_fake * w_fake) / m - mean_w * mean_w
    return (1.0 - mean_w) ** 2 / var_w if var_w > 0.0 else 0.0


def _end(
    sign: float,
    anchor: float,
    w_fake: float,
    radius: float,
    n: int,
    sums: tuple[float, float, float, float, float],
) -> float | None:
    """One end (``sign=-1`` lower, ``+1`` upper) for one phantom weight; ``None`` if infeasible."""
    sum_w, sum_w2, sum_wr, sum_w2r, sum_w2r2 = sums
    # Anchoring at the bound makes the phantom's term vanish, so its reward drops out.
    sum_h = sum_wr - anchor * sum_w
    sum_wh = sum_w2r - anchor * sum_w2
    sum_h2 = sum_w2r2 - 2.0 * anchor * sum_w2r + anchor * anchor * sum_w2
    if math.isinf(w_fake):
        # The phantom takes whatever weight mass is missing at vanishing probability: the real
        # events keep total probability 1 and the constraint on w disappears.
        need = 1.0 / n
        if need > radius:
            return None
        mean_h = sum_h / n
        var_h = max(sum_h2 / n - mean_h * mean_h, 0.0)
        spread = math.sqrt((radius - need) * n * var_h / (n + 1))
        return anchor + mean_h + sign * spread
    m = n + 1
    mean_w = (sum_w + w_fake) / m
    var_w = (sum_w2 + w_fake * w_fake) / m - mean_w * mean_w
    if var_w <= 0.0:
        return None
    need = (1.0 - mean_w) ** 2 / var_w
    if need > radius:
        return None
    mean_h = sum_h / m
    cov = sum_wh / m - mean_w * mean_h
    residual = max(sum_h2 / m - mean_h * mean_h - cov * cov / var_w, 0.0)
    center = mean_h + (1.0 - mean_w) * cov / var_w
    return anchor + center + sign * math.sqrt((radius - need) * residual)


def interval(
    *,
    n: int,
    sum_w: float,
    sum_w2: float,
    sum_wr: float,
    sum_w2r: float,
    sum_w2r2: float,
    reward_range: tuple[float, float],
    weight_range: tuple[float, float] = (0.0, math.inf),
    alpha: float = 0.05,
) -> Interval:
    """Cressie-Read interval for ``V = E[w r]`` from sufficient statistics.

    Parameters
    ----------
    n
        Number of events.
    sum_w, sum_w2, sum_wr, sum_w2r, sum_w2r2
        ``Σw``, ``Σw²``, ``Σwr``, ``Σw²r``, ``Σw²r²`` over the events, ``w = p_target / p_log``.
    reward_range
        ``(r_min, r_max)``, known a priori; every reward lies in it.
    weight_range
        ``(w_min, w_max)``, the a-priori range of importance weights: ``w_min < 1 < w_max``.
        The true bounds (``w_max = 1 / smallest propensity``) give tighter intervals than the
        default ``(0, inf)``; the empirical extremes are not valid substitutes.
    alpha
        Miscoverage level, in (0, 1).

    Returns
    -------
    Interval
        Inside ``[r_min, r_max]``; the whole range when ``n == 0`` or when no reweighting fits.
    """
    r_min, r_max = reward_range
    w_min, w_max = weight_range
    if not w_min < 1.0 < w_max:
        raise ValueError(
            f"`weight_range` must satisfy w_min < 1 < w_max (got ({w_min:g}, {w_max:g}))"
        )
    a = check.alpha(alpha)
    if n == 0:
        return Interval(r_min, r_max)
    sums = (sum_w, sum_w2, sum_wr, sum_w2r, sum_w2r2)
    # The phantom that best repairs the empirical weight mean sits at the far end.
    w_closest = w_max if sum_w < n else w_min
    profile = _profile_divergence(n, sum_w, sum_w2, w_closest)
    radius = profile + float(special.fdtri(1.0, float(n), 1.0 - a)) / (n + 1)

    lows = [_end(-1.0, r_min, w, radius, n, sums) for w in (w_min, w_max)]
    highs = [_end(1.0, r_max, w, radius, n, sums) for w in (w_min, w_max)]
    low = min((x for x in lows if x is not None), default=r_min)
    high = max((x for x in highs if x is not None), default=r_max)
    return Interval(min(max(low, r_min), r_max), min(max(high, r_min), r_max))
