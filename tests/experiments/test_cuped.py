"""CUPED: theta by hand, adjusted moments, variance reduction, unbiasedness."""

from __future__ import annotations

import numpy as np
import pytest

from experiments.stats import JointMoments, Moments, cuped_adjust, welch_test

RHO = 0.7


def _arm(rng: np.random.Generator, n: int, effect: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Pre-period x and in-experiment y with corr(x, y) = RHO and unit variances."""
    x = rng.normal(5.0, 1.0, size=n)
    y = 5.0 + RHO * (x - 5.0) + np.sqrt(1 - RHO**2) * rng.normal(size=n) + effect
    return x, y


def test_theta_is_the_pooled_within_arm_cov_over_var() -> None:
    rng = np.random.default_rng(50)
    arms = [_arm(rng, 400), _arm(rng, 600, effect=0.5)]
    result = cuped_adjust([JointMoments.from_values(x, y) for x, y in arms])
    s_xy = sum(np.cov(x, y)[0, 1] * (len(x) - 1) for x, y in arms)
    s_xx = sum(np.var(x, ddof=1) * (len(x) - 1) for x, _ in arms)
    assert result.theta == pytest.approx(s_xy / s_xx, rel=1e-9)
    # Deng et al.'s cov/var over all units pooled differs only by O(1/sqrt(n)).
    all_x = np.concatenate([x for x, _ in arms])
    all_y = np.concatenate([y for _, y in arms])
    assert result.theta == pytest.approx(
        np.cov(all_x, all_y)[0, 1] / np.var(all_x, ddof=1), abs=0.02
    )
    assert result.covariate_mean == pytest.approx(all_x.mean())


def test_adjusted_moments_are_those_of_the_adjusted_values() -> None:
    rng = np.random.default_rng(51)
    arms = [_arm(rng, 300), _arm(rng, 300, effect=0.2), _arm(rng, 150)]
    result = cuped_adjust([JointMoments.from_values(x, y) for x, y in arms])
    mean_x = np.concatenate([x for x, _ in arms]).mean()
    for (x, y), adjusted in zip(arms, result.adjusted, strict=True):
        expected = Moments.from_values(y - result.theta * (x - mean_x))
        assert adjusted.n == expected.n
        assert adjusted.mean == pytest.approx(expected.mean, rel=1e-10)
        assert adjusted.variance == pytest.approx(expected.variance, rel=1e-8)


def test_variance_shrinks_by_one_minus_rho_squared() -> None:
    rng = np.random.default_rng(52)
    arms = [_arm(rng, 20_000), _arm(rng, 20_000, effect=0.1)]
    joint = [JointMoments.from_values(x, y) for x, y in arms]
    result = cuped_adjust(joint)
    for reduction, raw, adjusted in zip(
        result.variance_reduction, joint, result.adjusted, strict=True
    ):
        assert reduction == pytest.approx(RHO**2, abs=0.02)
        assert adjusted.variance == pytest.approx(raw.y.variance * (1 - reduction))
    raw_test = welch_test(joint[0].y, joint[1].y)
    adjusted_test = welch_test(result.adjusted[0], result.adjusted[1])
    assert adjusted_test.difference_ci.width < 0.75 * raw_test.difference_ci.width


def test_adjusted_difference_is_unbiased_and_less_variable() -> None:
    rng = np.random.default_rng(53)
    effect, replications = 0.3, 600
    raw, adjusted = [], []
    for _ in range(replications):
        arms = [_arm(rng, 200), _arm(rng, 200, effect=effect)]
        joint = [JointMoments.from_values(x, y) for x, y in arms]
        result = cuped_adjust(joint)
        raw.append(joint[1].y.mean - joint[0].y.mean)
        adjusted.append(result.adjusted[1].mean - result.adjusted[0].mean)
    adjusted_arr, raw_arr = np.array(adjusted), np.array(raw)
    standard_error = adjusted_arr.std(ddof=1) / np.sqrt(replications)
    assert abs(adjusted_arr.mean() - effect) < 3 * standard_error
    assert adjusted_arr.var(ddof=1) / raw_arr.var(ddof=1) == pytest.approx(1 - RHO**2, abs=0.1)


def test_constant_covariate_means_no_adjustment() -> None:
    rng = np.random.default_rng(54)
    y = rng.normal(size=100)
    joint = JointMoments.from_values(np.zeros(100), y)
    result = cuped_adjust([joint, joint])
    assert result.theta == 0.0
    assert result.adjusted[0].mean == pytest.approx(joint.y.mean)
    assert result.adjusted[0].variance == pytest.approx(joint.y.variance)
    assert list(result.variance_reduction) == pytest.approx([0.0, 0.0])


def test_invalid_inputs_name_the_argument() -> None:
    with pytest.raises(ValueError, match=r"`arms` must not be empty"):
        cuped_adjust([])
    with pytest.raises(TypeError, match=r"`arms\[0\]` must be JointMoments \(got Moments\)"):
        cuped_adjust([Moments(0, 0.0, 0.0)])  # type: ignore[list-item]
    single = JointMoments.from_values([1.0], [2.0])
    with pytest.raises(ValueError, match=r"`arms` needs an arm with at least 2 units"):
        cuped_adjust([single, single])
