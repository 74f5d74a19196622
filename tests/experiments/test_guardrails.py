"""Guardrails: one-sided degradation tests against scipy, breaches, peeking at the null boundary."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from experiments.stats import DEFAULT_TUNING_N, Guardrail, GuardrailResult, Moments, check_guardrail
from experiments.stats.sequential import always_valid_p, mixing_variance

RNG_SEED = 40


def _samples() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(RNG_SEED)
    return rng.normal(2.0, 1.0, size=300), rng.normal(2.1, 1.5, size=250)


@pytest.mark.parametrize(
    ("higher_is_better", "kind", "delta"),
    [
        (False, "absolute", 0.0),
        (False, "absolute", 0.05),
        (True, "absolute", 0.05),
        (False, "relative", 0.03),
        (True, "relative", 0.03),
    ],
)
def test_fixed_p_value_equals_scipy_one_sided_welch(
    higher_is_better: bool, kind: str, delta: float
) -> None:
    control, treatment = _samples()
    guardrail = Guardrail("m", delta, kind, higher_is_better)  # type: ignore[arg-type]
    result = check_guardrail(
        guardrail, Moments.from_values(control), Moments.from_values(treatment)
    )
    # Rewrite each hypothesis as "mean(a) > mean(b)" on transformed samples.
    if kind == "absolute":
        a, b = (
            (treatment - delta, control) if not higher_is_better else (control - delta, treatment)
        )
    else:
        factor = 1 + delta if not higher_is_better else 1 - delta
        a, b = (
            (treatment, factor * control) if not higher_is_better else (factor * control, treatment)
        )
    expected = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert result.p_value == pytest.approx(expected.pvalue, rel=1e-8)


def test_always_valid_p_is_the_one_sided_mixture_on_the_excess() -> None:
    control, treatment = _samples()
    mc, mt = Moments.from_values(control), Moments.from_values(treatment)
    result = check_guardrail(Guardrail("m", 0.03, "relative", False), mc, mt)
    excess = mt.mean - 1.03 * mc.mean
    variance = mt.variance / mt.n + 1.03**2 * mc.variance / mc.n
    tau2 = mixing_variance((mt.variance + 1.03**2 * mc.variance) / DEFAULT_TUNING_N, 0.05)
    expected = float(always_valid_p(excess, variance, tau2, one_sided=True))
    assert result.always_valid_p == pytest.approx(expected)
    assert result.breached == (expected <= 0.05)


def test_coefficients_encode_the_documented_table() -> None:
    assert Guardrail("m", 0.1, "absolute", False).coefficients() == (1.0, -1.0, -0.1)
    assert Guardrail("m", 0.1, "relative", False).coefficients() == (1.0, -1.1, 0.0)
    assert Guardrail("m", 0.1, "absolute", True).coefficients() == (-1.0, 1.0, -0.1)
    assert Guardrail("m", 0.1, "relative", True).coefficients() == pytest.approx((-1.0, 0.9, 0.0))


def test_clear_dismiss_rate_increase_is_a_breach() -> None:
    dismiss = Guardrail("dismiss_rate", 0.05, "relative", higher_is_better=False)
    result = check_guardrail(
        dismiss, Moments.bernoulli(20_000, 2_000), Moments.bernoulli(20_000, 2_600)
    )
    assert result.breached
    assert result.degradation == pytest.approx(0.3)
    assert result.always_valid_p < 1e-6
    assert (result.control_mean, result.treatment_mean) == (0.1, 0.13)


def test_degradation_within_the_allowance_is_not_a_breach() -> None:
    dismiss = Guardrail("dismiss_rate", 0.05, "relative", higher_is_better=False)
    result = check_guardrail(
        dismiss, Moments.bernoulli(20_000, 2_000), Moments.bernoulli(20_000, 2_040)
    )
    assert not result.breached
    assert result.degradation == pytest.approx(0.02)
    assert result.p_value > 0.5


def test_tips_per_day_drop_beyond_an_absolute_allowance_is_a_breach() -> None:
    rng = np.random.default_rng(41)
    tips = Guardrail("tips_per_day", 0.1, "absolute", higher_is_better=True)
    control = Moments.from_values(rng.poisson(3.0, size=5000))
    treatment = Moments.from_values(rng.poisson(2.6, size=5000))
    result = check_guardrail(tips, control, treatment)
    assert result.breached
    assert result.degradation == pytest.approx(control.mean - treatment.mean)


def test_improvement_is_never_a_breach() -> None:
    tips = Guardrail("tips_per_day", 0.0, "relative", higher_is_better=True)
    result = check_guardrail(tips, Moments.bernoulli(5000, 1000), Moments.bernoulli(5000, 1500))
    assert not result.breached
    assert result.degradation == pytest.approx(-0.5)
    assert result.p_value > 0.99


def test_zero_variance_uses_the_known_excess() -> None:
    zero = Moments.bernoulli(500, 0)
    dismiss = Guardrail("dismiss_rate", 0.01, "absolute", higher_is_better=False)
    result = check_guardrail(dismiss, zero, zero)
    assert (result.p_value, result.always_valid_p, result.breached) == (1.0, 1.0, False)
    relative = check_guardrail(Guardrail("dismiss_rate", 0.1, "relative", False), zero, zero)
    assert relative.degradation is None


def test_previous_result_makes_the_always_valid_p_a_running_minimum() -> None:
    dismiss = Guardrail("dismiss_rate", 0.05, "relative", higher_is_better=False)
    earlier = check_guardrail(dismiss, Moments.bernoulli(1000, 100), Moments.bernoulli(1000, 160))
    later = check_guardrail(
        dismiss, Moments.bernoulli(2000, 200), Moments.bernoulli(2000, 220), previous=earlier
    )
    assert later.always_valid_p == earlier.always_valid_p
    assert later.breached
    other = GuardrailResult("other", "relative", 0.1, True, 1.0, 1.0, 0.0, 0.5, 0.5, False)
    with pytest.raises(ValueError, match=r"`previous` is for metric 'other', not 'dismiss_rate'"):
        check_guardrail(dismiss, Moments.bernoulli(10, 1), Moments.bernoulli(10, 1), previous=other)


def test_flag_rate_at_the_null_boundary_stays_below_alpha_under_peeking() -> None:
    # Dismiss rate exactly 5 % (relative) worse in treatment: the worst case of H0.
    rng = np.random.default_rng(42)
    experiments, looks, batch, alpha, delta = 1000, 30, 100, 0.05, 0.05
    rate_c = 0.2
    rate_t = rate_c * (1 + delta)
    n = batch * np.arange(1, looks + 1, dtype=np.float64)
    hits_c = rng.binomial(batch, rate_c, size=(experiments, looks)).cumsum(axis=1)
    hits_t = rng.binomial(batch, rate_t, size=(experiments, looks)).cumsum(axis=1)
    mean_c, mean_t = hits_c / n, hits_t / n
    var_c = mean_c * (1 - mean_c) * n / (n - 1)
    var_t = mean_t * (1 - mean_t) * n / (n - 1)
    excess = mean_t - (1 + delta) * mean_c
    variance = var_t / n + (1 + delta) ** 2 * var_c / n
    tau2 = mixing_variance((var_t + (1 + delta) ** 2 * var_c) / DEFAULT_TUNING_N, alpha)
    sequential = (always_valid_p(excess, variance, tau2, one_sided=True) <= alpha).any(axis=1)
    df = variance**2 / ((var_t / n) ** 2 / (n - 1) + ((1 + delta) ** 2 * var_c / n) ** 2 / (n - 1))
    naive = (stats.t.sf(excess / np.sqrt(variance), df) < alpha).any(axis=1)
    print(
        f"\nguardrail at the null boundary, {looks} looks: flagged "
        f"sequential={sequential.mean():.3f}  naive one-sided Welch={naive.mean():.3f}"
    )
    assert sequential.mean() <= alpha + 2.33 * math.sqrt(alpha * (1 - alpha) / experiments)
    assert naive.mean() > 2 * alpha
    # Spot-check the vectorized computation against check_guardrail itself.
    guardrail = Guardrail("dismiss_rate", delta, "relative", higher_is_better=False)
    for e in range(3):
        result = check_guardrail(
            guardrail,
            Moments.bernoulli(int(n[-1]), int(hits_c[e, -1])),
            Moments.bernoulli(int(n[-1]), int(hits_t[e, -1])),
        )
        expected = always_valid_p(excess[e, -1], variance[e, -1], tau2[e, -1], one_sided=True)
        assert result.always_valid_p == pytest.approx(float(expected))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"metric": "", "max_degradation": 0.1}, r"`metric` of a guardrail must be a non-empty"),
        (
            {"metric": "m", "max_degradation": -0.1},
            r"`max_degradation` of guardrail 'm' must be non-negative \(got -0.1\)",
        ),
        (
            {"metric": "m", "max_degradation": 1.0},
            r"`max_degradation` of guardrail 'm' must be below 1 for a relative drop",
        ),
        (
            {"metric": "m", "max_degradation": 0.1, "kind": "ratio"},
            r"`kind` of guardrail 'm' must be 'relative' or 'absolute' \(got 'ratio'\)",
        ),
    ],
)
def test_invalid_guardrails_name_the_argument(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Guardrail(**kwargs)  # type: ignore[arg-type]


def test_check_needs_two_observations_per_arm() -> None:
    guardrail = Guardrail("m", 0.1)
    with pytest.raises(ValueError, match=r"`treatment` needs at least 2 observations \(got n=1\)"):
        check_guardrail(guardrail, Moments.bernoulli(10, 2), Moments.bernoulli(1, 1))
