"""Fixed-horizon statistics against scipy and hand computations; coverage over replications."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from experiments.stats import Interval, Moments, mean_ci, welch_test

CONTROL = [1.0, 2.0, 3.0, 4.0, 5.0]
TREATMENT = [2.0, 4.0, 6.0, 8.0, 10.0, 12.0]


def test_mean_ci_equals_scipy_t_interval() -> None:
    m = Moments.from_values(CONTROL)
    ci = mean_ci(m, alpha=0.1)
    low, high = stats.t.interval(0.9, df=4, loc=3.0, scale=stats.sem(CONTROL))
    assert ci.low == pytest.approx(low)
    assert ci.high == pytest.approx(high)
    assert ci.level == pytest.approx(0.9)
    # By hand: s = sqrt(2.5), t_{0.95, 4} = 2.131847...
    assert ci.high - 3.0 == pytest.approx(2.1318467863266504 * math.sqrt(2.5 / 5))


def test_mean_ci_uses_t_not_normal_quantiles() -> None:
    small = mean_ci(Moments.from_values(CONTROL))
    z_half_width = stats.norm.ppf(0.975) * stats.sem(CONTROL)
    assert small.width / 2 > z_half_width * 1.3


def test_welch_equals_scipy() -> None:
    result = welch_test(Moments.from_values(CONTROL), Moments.from_values(TREATMENT), alpha=0.1)
    expected = stats.ttest_ind(TREATMENT, CONTROL, equal_var=False)
    assert result.difference == pytest.approx(4.0)
    assert result.t_statistic == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.df == pytest.approx(expected.df)
    ci = expected.confidence_interval(confidence_level=0.9)
    assert result.difference_ci.low == pytest.approx(ci.low)
    assert result.difference_ci.high == pytest.approx(ci.high)
    assert result.difference_ci.level == pytest.approx(0.9)


def test_welch_df_by_hand() -> None:
    # a = 2.5 / 5 = 0.5; b = 14 / 6 = 7/3; df = (a + b)**2 / (a**2 / 4 + b**2 / 5)
    a, b = 0.5, 14 / 6
    result = welch_test(Moments.from_values(CONTROL), Moments.from_values(TREATMENT))
    assert result.df == pytest.approx((a + b) ** 2 / (a**2 / 4 + b**2 / 5))
    assert result.t_statistic == pytest.approx(4.0 / math.sqrt(a + b))


def test_welch_matches_scipy_on_random_unbalanced_data() -> None:
    rng = np.random.default_rng(3)
    for _ in range(20):
        c = rng.normal(1.0, rng.uniform(0.5, 3), size=rng.integers(5, 300))
        t = rng.normal(1.2, rng.uniform(0.5, 3), size=rng.integers(5, 300))
        result = welch_test(Moments.from_values(c), Moments.from_values(t))
        expected = stats.ttest_ind(t, c, equal_var=False)
        assert result.p_value == pytest.approx(expected.pvalue, rel=1e-8)
        assert result.df == pytest.approx(expected.df, rel=1e-8)


def test_relative_lift_delta_method_by_hand() -> None:
    result = welch_test(Moments.from_values(CONTROL), Moments.from_values(TREATMENT))
    assert result.relative_lift == pytest.approx(4.0 / 3.0)
    # var(m_t / m_c) ~ var_t / m_c**2 + m_t**2 var_c / m_c**4 with var_t = 7/3, var_c = 0.5
    se = math.sqrt((14 / 6) / 9 + 49 * 0.5 / 81)
    assert result.relative_lift_ci is not None
    assert result.relative_lift_ci.high - 4.0 / 3.0 == pytest.approx(1.959963984540054 * se)


def test_relative_lift_is_none_when_control_mean_is_zero() -> None:
    result = welch_test(Moments.from_values([-1.0, 1.0]), Moments.from_values([1.0, 2.0]))
    assert result.relative_lift is None
    assert result.relative_lift_ci is None


def test_intervals_cover_at_their_level_and_tighten_with_data() -> None:
    rng = np.random.default_rng(4)
    replications, n = 2000, 40
    covered_mean = covered_diff = covered_lift = 0
    for _ in range(replications):
        c = rng.exponential(2.0, size=n)
        t = rng.exponential(2.4, size=n)
        mc, mt = Moments.from_values(c), Moments.from_values(t)
        covered_mean += 2.0 in mean_ci(mc)
        result = welch_test(mc, mt)
        covered_diff += 0.4 in result.difference_ci
        assert result.relative_lift_ci is not None
        covered_lift += 0.2 in result.relative_lift_ci
    margin = 3 * math.sqrt(0.05 * 0.95 / replications)
    # Exponential data are skewed; n = 40 still gives close to nominal t coverage.
    assert covered_mean / replications > 0.95 - margin - 0.015
    assert abs(covered_diff / replications - 0.95) < margin + 0.01
    assert covered_lift / replications > 0.95 - margin - 0.015
    widths = [mean_ci(Moments.from_values(rng.normal(size=k))).width for k in (100, 400, 1600)]
    assert widths[0] > widths[1] > widths[2]
    assert widths[0] / widths[2] == pytest.approx(4.0, rel=0.15)


def test_interval_helpers() -> None:
    ci = Interval(-1.0, 2.0, 0.95)
    assert 0.0 in ci
    assert 3.0 not in ci
    assert not ci.excludes_zero()
    assert Interval(0.5, 2.0, 0.95).excludes_zero()
    assert ci.width == 3.0


def test_invalid_inputs_name_the_argument() -> None:
    one = Moments(1, 1.0, 1.0)
    two = Moments.from_values([1.0, 2.0])
    with pytest.raises(ValueError, match=r"`moments.n` must be at least 2 for an interval"):
        mean_ci(one)
    with pytest.raises(ValueError, match=r"`alpha` must be in \(0, 1\) \(got 1.5\)"):
        mean_ci(two, alpha=1.5)
    with pytest.raises(ValueError, match=r"`control` needs at least 2 observations \(got n=1\)"):
        welch_test(one, two)
    with pytest.raises(ValueError, match=r"`treatment` needs at least 2 observations"):
        welch_test(two, one)
    flat = Moments.from_values([3.0, 3.0, 3.0])
    with pytest.raises(ValueError, match=r"both have zero variance"):
        welch_test(flat, flat)
