"""Sufficient statistics: agreement with numpy, merging, grouping, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from experiments.stats import JointMoments, Moments

finite_values = st.lists(
    st.floats(min_value=-1e3, max_value=1e3, allow_nan=False), min_size=2, max_size=50
)


def test_moments_match_numpy() -> None:
    values = np.random.default_rng(0).gamma(2.0, 3.0, size=1000)
    m = Moments.from_values(values)
    assert m.n == 1000
    assert m.mean == pytest.approx(values.mean(), rel=1e-12)
    assert m.variance == pytest.approx(values.var(ddof=1), rel=1e-9)
    assert m.std == pytest.approx(values.std(ddof=1), rel=1e-9)
    assert m.standard_error == pytest.approx(values.std(ddof=1) / math.sqrt(1000), rel=1e-9)


@given(finite_values, finite_values)
def test_merging_equals_concatenating(left: list[float], right: list[float]) -> None:
    merged = Moments.from_values(left) + Moments.from_values(right)
    together = Moments.from_values(left + right)
    assert merged.n == together.n
    assert merged.sum == pytest.approx(together.sum, abs=1e-6)
    assert merged.sum_sq == pytest.approx(together.sum_sq, rel=1e-9, abs=1e-6)


def test_by_group_matches_splitting() -> None:
    rng = np.random.default_rng(1)
    groups = rng.integers(0, 3, size=5000)
    values = rng.normal(size=5000)
    grouped = Moments.by_group(groups, values, n_groups=4)
    assert len(grouped) == 4
    for g in range(3):
        expected = Moments.from_values(values[groups == g])
        assert grouped[g].n == expected.n
        assert grouped[g].sum == pytest.approx(expected.sum)
        assert grouped[g].sum_sq == pytest.approx(expected.sum_sq)
    assert grouped[3] == Moments(0, 0.0, 0.0)
    assert all(type(m.n) is int and type(m.sum) is float for m in grouped)


def test_bernoulli_moments_are_those_of_zeros_and_ones() -> None:
    assert Moments.bernoulli(10, 3) == Moments.from_values([1, 1, 1, 0, 0, 0, 0, 0, 0, 0])
    assert Moments.bernoulli(10, 3).variance == pytest.approx(0.3 * 0.7 * 10 / 9)


def test_joint_moments_match_numpy() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=800)
    y = 0.5 * x + rng.normal(size=800)
    joint = JointMoments.from_values(x, y)
    assert joint.covariance == pytest.approx(np.cov(x, y)[0, 1], rel=1e-9)
    assert joint.x.variance == pytest.approx(x.var(ddof=1), rel=1e-9)
    assert joint.y.mean == pytest.approx(y.mean(), rel=1e-12)
    halves = JointMoments.from_values(x[:300], y[:300]) + JointMoments.from_values(x[300:], y[300:])
    assert halves.sum_xy == pytest.approx(joint.sum_xy)
    groups = (x > 0).astype(int)
    by_group = JointMoments.by_group(groups, x, y, n_groups=2)
    assert by_group[1].sum_xy == pytest.approx(float(np.dot(x[x > 0], y[x > 0])))
    assert (by_group[0] + by_group[1]).n == 800


def test_constant_values_have_zero_variance_despite_rounding() -> None:
    m = Moments.from_values(np.full(1000, 0.1))
    assert m.variance == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize(
    ("args", "error", "message"),
    [
        ((-1, 0.0, 0.0), ValueError, r"`n` must be at least 0 \(got -1\)"),
        ((1.5, 0.0, 0.0), TypeError, r"`n` must be an integer \(got 1.5\)"),
        ((2, 1.0, -1.0), ValueError, r"`sum_sq` must be non-negative"),
        ((0, 1.0, 1.0), ValueError, r"`sum` and `sum_sq` must be 0 when `n` is 0"),
        ((2, 10.0, 1.0), ValueError, r"`sum_sq` must be at least sum\*\*2 / n"),
        ((2, float("nan"), 1.0), ValueError, r"`sum` must be finite"),
        ((2, "3", 9.0), TypeError, r"`sum` must be a finite number"),
    ],
)
def test_inconsistent_moments_are_rejected(
    args: tuple[object, object, object], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        Moments(*args)  # type: ignore[arg-type]


def test_statistics_that_need_more_data_say_so() -> None:
    with pytest.raises(ValueError, match=r"`n` must be at least 1 for a mean \(got 0\)"):
        _ = Moments(0, 0.0, 0.0).mean
    with pytest.raises(ValueError, match=r"`n` must be at least 2 for a variance \(got 1\)"):
        _ = Moments(1, 2.0, 4.0).variance
    with pytest.raises(ValueError, match=r"`successes` must be at most `n` \(3\) \(got 4\)"):
        Moments.bernoulli(3, 4)


def test_inconsistent_joint_moments_are_rejected() -> None:
    # x = y = (0, 1) but a cross product of -5 would need a correlation below -1.
    with pytest.raises(ValueError, match=r"`sum_xy` is inconsistent"):
        JointMoments(2, 1.0, 1.0, 1.0, 1.0, -5.0)
    with pytest.raises(ValueError, match=r"`x` and `y` must be 1-D of equal length"):
        JointMoments.from_values([1.0, 2.0], [1.0])


def test_grouping_validates_labels() -> None:
    with pytest.raises(ValueError, match=r"`groups` must lie in \[0, 2\) \(got 0..2\)"):
        Moments.by_group([0, 1, 2], [1.0, 2.0, 3.0], n_groups=2)
    with pytest.raises(TypeError, match=r"`groups` must hold integers"):
        Moments.by_group([0.0, 1.0], [1.0, 2.0], n_groups=2)
    with pytest.raises(ValueError, match=r"`groups` and `values` must be 1-D of equal length"):
        Moments.by_group([0, 1], [1.0], n_groups=2)
