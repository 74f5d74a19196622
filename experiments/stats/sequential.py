"""Always-valid inference for a difference in means: the mixture sequential probability ratio test.

Experimenters watch results while data arrive and stop when they look conclusive. A fixed-horizon
p-value checked at every look rejects a true null far more often than ``alpha``; the p-values and
confidence sequences here stay valid at *every* look, however often and whenever one stops.

Method: mSPRT with a normal mixture (Robbins 1970; Johari, Koomen, Pekelis & Walsh 2017,
"Peeking at A/B tests: why it matters, and what to do about it", KDD, and "Always valid
inference: continuous monitoring of A/B tests", Operations Research 70(3), 2022). Let
``d = mean_t - mean_c`` with variance ``V = s_t**2 / n_t + s_c**2 / n_c``. Against the null
"difference = theta", mixing the likelihood ratio over alternatives ``N(theta, tau**2)`` gives

    Lambda = sqrt(V / (V + tau**2)) * exp(tau**2 * (d - theta)**2 / (2 * V * (V + tau**2)))

which is a nonnegative martingale under the null, so by Ville's inequality
``P(sup_n Lambda_n >= 1 / alpha) <= alpha``. Hence

* ``always_valid_p = min(1, 1 / Lambda(theta=0))``, and its running minimum over looks, is an
  always-valid p-value: rejecting the first time it is ``<= alpha`` has type-I error ``<= alpha``;
* ``{theta : Lambda(theta) < 1 / alpha}``, i.e. ``d ± r`` with
  ``r = sqrt(V * (V + tau**2) / tau**2 * (2 * log(1 / alpha) + log((V + tau**2) / V)))``, and the
  running intersection of these intervals, is a ``1 - alpha`` confidence sequence: it covers the
  true difference at all looks simultaneously. ``0`` leaves it exactly when ``p <= alpha``.

This interval is the same as the asymptotic normal-mixture confidence sequence of Howard, Ramdas,
McAuliffe & Sekhon (2021, "Time-uniform, nonparametric, nonasymptotic confidence sequences",
Annals of Statistics) and of Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas ("Time-uniform central
limit theory and asymptotic confidence sequences") with ``tau = rho * sigma``.

Practical choices:

* The variances are plug-in sample variances, so validity is asymptotic (the A/A simulations in
  ``tests/experiments`` check it from 100 units per arm on, for normal and 0/1 metrics). With
  known variances and normal data the mixture is an exact martingale as long as the allocation
  ratio between the arms is fixed, which assignment with fixed weights provides.
* The mixing standard deviation ``tau`` sets where the boundary is tightest. By default it is
  tuned to ``tuning_n`` units per arm:
  ``tau**2 = V* * (2 * log(1 / alpha) + log(1 + 2 * log(1 / alpha)))`` with
  ``V* = (s_c**2 + s_t**2) / tuning_n`` (the approximately optimal mixture of Howard et al. 2021).
  It only trades early against late power; any ``tau > 0`` keeps the guarantee.

The one-sided variant (used by guardrails) mixes over alternatives ``theta > 0`` only, with a
half-normal mixture; under ``H0: theta <= 0`` it is a nonnegative supermartingale, so Ville's
inequality applies unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy import special

from experiments.stats import _checks
from experiments.stats.intervals import Interval
from experiments.stats.moments import Moments

__all__ = [
    "DEFAULT_TUNING_N",
    "SequentialResult",
    "always_valid_p",
    "confidence_radius",
    "log_likelihood_ratio",
    "mixing_variance",
    "msprt",
]

FloatArray = npt.NDArray[np.float64]

DEFAULT_TUNING_N = 5_000
"""Units per arm at which the default mixture makes the confidence sequence tightest."""


@dataclass(frozen=True, slots=True)
class SequentialResult:
    """Always-valid inference on ``mean_treatment - mean_control`` at one look.

    Attributes
    ----------
    difference : float
        The current estimate ``mean_treatment - mean_control``.
    always_valid_p : float
        Always-valid two-sided p-value for "no difference"; the running minimum over looks when
        the previous look's result was supplied.
    always_valid_ci : Interval
        Confidence sequence for the difference at level ``1 - alpha``; the running intersection
        over looks when the previous look's result was supplied.
    tau : float
        Mixing standard deviation used, in the metric's units.
    """

    difference: float
    always_valid_p: float
    always_valid_ci: Interval
    tau: float


def mixing_variance(variance_at_tuning: npt.ArrayLike, alpha: float) -> FloatArray:
    """Mixing variance ``tau**2`` that makes the confidence sequence tightest at variance ``V*``.

    ``tau**2 = V* * (2 * log(1 / alpha) + log(1 + 2 * log(1 / alpha)))``, the closed-form
    approximate minimizer of the normal-mixture boundary width at intrinsic time ``1 / V*``
    (Howard, Ramdas, McAuliffe & Sekhon 2021).

    Parameters
    ----------
    variance_at_tuning : array_like of float, any shape
        ``V*``, the variance of the estimate at the sample size to tune for; positive.
    alpha : float
        Level of the test.

    Returns
    -------
    ndarray of float, same shape
    """
    alpha = _checks.probability(alpha, "alpha")
    v_star = _positive(variance_at_tuning, "variance_at_tuning")
    two_log = 2.0 * math.log(1.0 / alpha)
    return v_star * (two_log + math.log1p(two_log))


def log_likelihood_ratio(
    estimate: npt.ArrayLike,
    variance: npt.ArrayLike,
    tau2: npt.ArrayLike,
    *,
    one_sided: bool = False,
) -> FloatArray:
    """Log of the normal-mixture likelihood ratio ``Lambda`` against "true value = 0".

    Parameters
    ----------
    estimate : array_like of float, shape (...)
        The estimate ``d`` (e.g. a difference in means) at each look.
    variance : array_like of float, broadcastable to shape (...)
        Its variance ``V``; positive.
    tau2 : array_like of float, broadcastable to shape (...)
        Mixing variance ``tau**2``; positive.
    one_sided : bool
        If True, mix over positive alternatives only (half-normal mixture), testing
        ``H0: true value <= 0`` against ``H1: > 0``:
        ``Lambda = 2 * sqrt(V / (V + tau**2)) * Phi(z) * exp(z**2 / 2)`` with
        ``z = tau * d / sqrt(V * (V + tau**2))``.

    Returns
    -------
    ndarray of float, shape (...)
    """
    d = np.asarray(estimate, dtype=np.float64)
    v = _positive(variance, "variance")
    t2 = _positive(tau2, "tau2")
    shrink = 0.5 * np.log(v / (v + t2))
    z = np.sqrt(t2) * d / np.sqrt(v * (v + t2))
    if one_sided:
        return np.asarray(math.log(2.0) + shrink + special.log_ndtr(z) + 0.5 * z * z, np.float64)
    return np.asarray(shrink + 0.5 * z * z, dtype=np.float64)


def always_valid_p(
    estimate: npt.ArrayLike,
    variance: npt.ArrayLike,
    tau2: npt.ArrayLike,
    *,
    one_sided: bool = False,
) -> FloatArray:
    """Always-valid p-value ``min(1, 1 / Lambda)`` at each look (no running minimum).

    Vectorized over any shape; with looks along the last axis,
    ``np.minimum.accumulate(p, axis=-1)`` gives the monotone version. Parameters are those of
    :func:`log_likelihood_ratio`.
    """
    log_lr = log_likelihood_ratio(estimate, variance, tau2, one_sided=one_sided)
    return np.exp(-np.maximum(log_lr, 0.0))


def confidence_radius(variance: npt.ArrayLike, tau2: npt.ArrayLike, alpha: float) -> FloatArray:
    """Half-width ``r`` of the two-sided ``1 - alpha`` confidence sequence ``estimate ± r``.

    ``r = sqrt(V * (V + tau**2) / tau**2 * (2 * log(1 / alpha) + log((V + tau**2) / V)))``,
    the set of true values ``theta`` with ``Lambda(theta) < 1 / alpha``.

    Parameters
    ----------
    variance : array_like of float, shape (...)
        Variance ``V`` of the estimate; positive.
    tau2 : array_like of float, broadcastable to shape (...)
        Mixing variance; positive.
    alpha : float
        One minus the (time-uniform) coverage.

    Returns
    -------
    ndarray of float, shape (...)
    """
    alpha = _checks.probability(alpha, "alpha")
    v = _positive(variance, "variance")
    t2 = _positive(tau2, "tau2")
    return np.asarray(
        np.sqrt(v * (v + t2) / t2 * (2.0 * math.log(1.0 / alpha) + np.log1p(t2 / v))),
        dtype=np.float64,
    )


def msprt(
    control: Moments,
    treatment: Moments,
    *,
    alpha: float = 0.05,
    tau: float | None = None,
    tuning_n: int = DEFAULT_TUNING_N,
    previous: SequentialResult | None = None,
) -> SequentialResult:
    """Always-valid p-value and confidence sequence for ``mean_treatment - mean_control``.

    Parameters
    ----------
    control, treatment : Moments
        Cumulative sufficient statistics of each arm at this look; each needs ``n >= 2``.
    alpha : float
        Level: the confidence sequence has time-uniform coverage ``1 - alpha``.
    tau : float, optional
        Mixing standard deviation in the metric's units. Defaults to the mixture tuned to
        ``tuning_n`` units per arm (module docstring).
    tuning_n : int
        Units per arm at which the default mixture is tightest; ignored when ``tau`` is given.
    previous : SequentialResult, optional
        This comparison's result at the previous look, with the same ``alpha``. When given, the
        p-value is the running minimum and the interval the running intersection, so verdicts never
        flip back. Should the intersection be empty (only possible when the plug-in variances are
        badly off), the current interval is returned.

    Returns
    -------
    SequentialResult

    Raises
    ------
    ValueError
        If an arm has fewer than 2 observations or both have zero variance.
    """
    alpha = _checks.probability(alpha, "alpha")
    for name, moments in (("control", control), ("treatment", treatment)):
        if moments.n < 2:
            raise ValueError(f"`{name}` needs at least 2 observations (got n={moments.n})")
    variance = control.variance / control.n + treatment.variance / treatment.n
    if variance == 0:
        raise ValueError(
            "`control` and `treatment` both have zero variance, "
            "so the difference has no standard error"
        )
    if tau is None:
        tuning_n = _checks.count(tuning_n, "tuning_n", minimum=2)
        tau2 = float(mixing_variance((control.variance + treatment.variance) / tuning_n, alpha))
    else:
        tau = _checks.finite(tau, "tau")
        if tau <= 0:
            raise ValueError(f"`tau` must be positive (got {tau})")
        tau2 = tau * tau

    difference = treatment.mean - control.mean
    p_value = float(always_valid_p(difference, variance, tau2))
    radius = float(confidence_radius(variance, tau2, alpha))
    ci = Interval(difference - radius, difference + radius, 1 - alpha)
    if previous is not None:
        if not math.isclose(previous.always_valid_ci.level, 1 - alpha):
            raise ValueError(
                f"`previous` was computed at level {previous.always_valid_ci.level}, "
                f"not {1 - alpha}"
            )
        p_value = min(p_value, previous.always_valid_p)
        low = max(ci.low, previous.always_valid_ci.low)
        high = min(ci.high, previous.always_valid_ci.high)
        if low <= high:
            ci = Interval(low, high, ci.level)
    return SequentialResult(difference, p_value, ci, math.sqrt(tau2))


def _positive(values: npt.ArrayLike, name: str) -> FloatArray:
    array = np.asarray(values, dtype=np.float64)
    if not np.all(array > 0) or not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` must be positive and finite (got {_describe(array)})")
    return array


def _describe(array: FloatArray) -> str:
    if array.ndim == 0:
        return str(float(array))
    bad = array[~((array > 0) & np.isfinite(array))]
    return f"{bad.size} bad values, e.g. {float(bad[0])}"
