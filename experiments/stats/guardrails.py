"""Guardrail metrics: flag a treatment that degrades a metric beyond an allowed margin.

A guardrail is a metric the experiment is not trying to move but must not hurt, such as the dismiss
rate (a proportion; higher is worse) or tips acted on per person per day (a mean; higher is
better). Each allows some degradation against control, relative (``0.05`` = 5 % worse) or
absolute (in the metric's units). A breach is flagged when the data show, with a one-sided test at
level ``alpha``, that the degradation exceeds the allowance:

    H0: degradation <= max_degradation    vs    H1: degradation > max_degradation.

Both kinds reduce to a hypothesis on a *linear* combination of the two means, so neither needs a
ratio approximation. For a higher-is-worse metric with control mean ``m_c > 0``,
``m_t / m_c - 1 > delta`` iff ``m_t - (1 + delta) * m_c > 0``; in general the test is on the
excess ``E = c_t * m_t + c_c * m_c + c_0``:

=================  ===========  ==================================
higher is better   kind         excess ``E`` (breach when ``E > 0``)
=================  ===========  ==================================
no                 absolute     ``m_t - m_c - delta``
no                 relative     ``m_t - (1 + delta) * m_c``
yes                absolute     ``m_c - m_t - delta``
yes                relative     ``(1 - delta) * m_c - m_t``
=================  ===========  ==================================

with variance ``c_t**2 * s_t**2 / n_t + c_c**2 * s_c**2 / n_c`` (independent arms). Two p-values
are reported:

* ``always_valid_p``: the one-sided normal-mixture mSPRT of :mod:`experiments.stats.sequential`
  on ``E``, valid under continuous monitoring. ``breached`` is ``always_valid_p <= alpha``.
* ``p_value``: the one-sided Welch t-test on ``E`` (Welch–Satterthwaite degrees of freedom), valid
  for a single pre-planned look only; shown for comparison with offline analyses.

When both arms have zero variance in the metric (e.g. no dismissals anywhere yet), the excess is
known exactly and both p-values are 0 if it is positive, else 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from experiments.stats import _checks, _distributions
from experiments.stats.moments import Moments
from experiments.stats.sequential import DEFAULT_TUNING_N, always_valid_p, mixing_variance

__all__ = ["Guardrail", "GuardrailKind", "GuardrailResult", "check_guardrail"]

GuardrailKind = Literal["relative", "absolute"]


@dataclass(frozen=True, slots=True)
class Guardrail:
    """A metric that a treatment must not degrade by more than ``max_degradation``.

    Attributes
    ----------
    metric : str
        Name of the metric (a key of each arm's guardrail moments).
    max_degradation : float
        Allowed degradation vs control, >= 0: a fraction of the control mean when ``kind`` is
        "relative" (``0.05`` = 5 %), metric units when "absolute".
    kind : {"relative", "absolute"}
        How ``max_degradation`` is measured.
    higher_is_better : bool
        Direction of the metric: False for dismiss rate, True for tips acted on per day.
    """

    metric: str
    max_degradation: float
    kind: GuardrailKind = "relative"
    higher_is_better: bool = True

    def __post_init__(self) -> None:
        if not isinstance(self.metric, str) or not self.metric:
            raise ValueError(
                f"`metric` of a guardrail must be a non-empty string (got {self.metric!r})"
            )
        if self.kind not in ("relative", "absolute"):
            raise ValueError(
                f"`kind` of guardrail {self.metric!r} must be 'relative' or 'absolute' "
                f"(got {self.kind!r})"
            )
        delta = _checks.finite(self.max_degradation, "max_degradation")
        if delta < 0:
            raise ValueError(
                f"`max_degradation` of guardrail {self.metric!r} must be non-negative (got {delta})"
            )
        if self.kind == "relative" and self.higher_is_better and delta >= 1:
            raise ValueError(
                f"`max_degradation` of guardrail {self.metric!r} must be below 1 for a relative "
                f"drop (got {delta})"
            )
        object.__setattr__(self, "max_degradation", delta)

    def coefficients(self) -> tuple[float, float, float]:
        """``(c_t, c_c, c_0)`` of the excess ``E = c_t * m_t + c_c * m_c + c_0`` (see module)."""
        delta = self.max_degradation
        sign = -1.0 if self.higher_is_better else 1.0
        if self.kind == "absolute":
            return sign, -sign, -delta
        return sign, -sign * (1.0 + sign * delta), 0.0


@dataclass(frozen=True, slots=True)
class GuardrailResult:
    """Outcome of one guardrail check for one treatment arm.

    Attributes
    ----------
    metric, kind, max_degradation, higher_is_better
        Echo of the :class:`Guardrail`.
    control_mean, treatment_mean : float
        Observed means.
    degradation : float or None
        Observed degradation, positive when the treatment is worse, in the guardrail's kind
        (relative: ``1 - m_t / m_c`` when higher is better, ``m_t / m_c - 1`` otherwise). None for a
        relative guardrail whose control mean is 0.
    p_value : float
        One-sided fixed-horizon Welch p-value of "degradation <= max_degradation".
    always_valid_p : float
        One-sided always-valid p-value of the same null; the running minimum over looks when the
        previous result was supplied.
    breached : bool
        ``always_valid_p <= alpha``.
    """

    metric: str
    kind: GuardrailKind
    max_degradation: float
    higher_is_better: bool
    control_mean: float
    treatment_mean: float
    degradation: float | None
    p_value: float
    always_valid_p: float
    breached: bool


def check_guardrail(
    guardrail: Guardrail,
    control: Moments,
    treatment: Moments,
    *,
    alpha: float = 0.05,
    tuning_n: int = DEFAULT_TUNING_N,
    previous: GuardrailResult | None = None,
) -> GuardrailResult:
    """Test whether ``treatment`` degrades ``guardrail.metric`` beyond the allowance vs ``control``.

    Parameters
    ----------
    guardrail : Guardrail
        The metric, its direction and its allowance.
    control, treatment : Moments
        Sufficient statistics of the metric in each arm (per unit; 0/1 values for a rate, see
        :meth:`Moments.bernoulli`); each needs ``n >= 2``.
    alpha : float
        One-sided level of the test.
    tuning_n : int
        Units per arm at which the sequential test's mixture is tuned (see
        :mod:`experiments.stats.sequential`).
    previous : GuardrailResult, optional
        This guardrail's result at the previous look; makes ``always_valid_p`` a running minimum.

    Returns
    -------
    GuardrailResult
    """
    alpha = _checks.probability(alpha, "alpha")
    tuning_n = _checks.count(tuning_n, "tuning_n", minimum=2)
    for name, moments in (("control", control), ("treatment", treatment)):
        if moments.n < 2:
            raise ValueError(f"`{name}` needs at least 2 observations (got n={moments.n})")
    if previous is not None and previous.metric != guardrail.metric:
        raise ValueError(f"`previous` is for metric {previous.metric!r}, not {guardrail.metric!r}")

    c_t, c_c, c_0 = guardrail.coefficients()
    excess = c_t * treatment.mean + c_c * control.mean + c_0
    part_t = c_t * c_t * treatment.variance / treatment.n
    part_c = c_c * c_c * control.variance / control.n
    variance = part_t + part_c
    if variance == 0:
        p_value = sequential_p = 0.0 if excess > 0 else 1.0
    else:
        df = variance**2 / (part_t**2 / (treatment.n - 1) + part_c**2 / (control.n - 1))
        p_value = _distributions.t_sf(excess / math.sqrt(variance), df)
        variance_at_tuning = (
            c_t * c_t * treatment.variance + c_c * c_c * control.variance
        ) / tuning_n
        tau2 = mixing_variance(variance_at_tuning, alpha)
        sequential_p = float(always_valid_p(excess, variance, tau2, one_sided=True))
    if previous is not None:
        sequential_p = min(sequential_p, previous.always_valid_p)

    return GuardrailResult(
        metric=guardrail.metric,
        kind=guardrail.kind,
        max_degradation=guardrail.max_degradation,
        higher_is_better=guardrail.higher_is_better,
        control_mean=control.mean,
        treatment_mean=treatment.mean,
        degradation=_degradation(guardrail, control.mean, treatment.mean),
        p_value=p_value,
        always_valid_p=sequential_p,
        breached=sequential_p <= alpha,
    )


def _degradation(guardrail: Guardrail, control_mean: float, treatment_mean: float) -> float | None:
    worse = treatment_mean - control_mean
    if guardrail.higher_is_better:
        worse = -worse
    if guardrail.kind == "absolute":
        return worse
    if control_mean == 0:
        return None
    return worse / control_mean
