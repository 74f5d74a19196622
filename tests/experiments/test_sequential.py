"""Always-valid inference (mSPRT): formula oracles, and A/A simulations under continuous peeking.

The simulations run many seeded experiments, each looked at after every batch of observations per
arm. Per-look sufficient statistics are cumulative sums over batches, so every look of every
experiment is computed in a handful of numpy operations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from scipy import integrate, stats

from experiments.stats import DEFAULT_TUNING_N, Interval, Moments, msprt
from experiments.stats.sequential import (
    always_valid_p,
    confidence_radius,
    log_likelihood_ratio,
    mixing_variance,
)

ALPHA = 0.05
EXPERIMENTS = 1000
LOOKS = 30
BATCH = 100  # observations per arm between looks

FloatArray = npt.NDArray[np.float64]


def _allowed(rate_bound: float, experiments: int) -> float:
    """``rate_bound`` plus a one-sided 99 % binomial Monte-Carlo margin."""
    return rate_bound + 2.33 * math.sqrt(rate_bound * (1 - rate_bound) / experiments)


@dataclass
class Looks:
    """Cumulative per-arm statistics at every look; arrays of shape (experiments, looks)."""

    n_c: FloatArray
    mean_c: FloatArray
    var_c: FloatArray
    n_t: FloatArray
    mean_t: FloatArray
    var_t: FloatArray

    @property
    def variance(self) -> FloatArray:
        return self.var_c / self.n_c + self.var_t / self.n_t

    def moments(self, e: int, look: int) -> tuple[Moments, Moments]:
        def one(n: float, mean: float, var: float) -> Moments:
            return Moments(int(n), mean * n, var * (n - 1) + mean * mean * n)

        return (
            one(self.n_c[e, look], self.mean_c[e, look], self.var_c[e, look]),
            one(self.n_t[e, look], self.mean_t[e, look], self.var_t[e, look]),
        )


def _cumulative(batches: FloatArray) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Counts, means and variances after each batch; ``batches`` has shape (E, looks, batch)."""
    size = batches.shape[2]
    n = size * np.arange(1, batches.shape[1] + 1, dtype=np.float64)
    sums = batches.sum(axis=2).cumsum(axis=1)
    sums_sq = (batches * batches).sum(axis=2).cumsum(axis=1)
    variance = (sums_sq - sums * sums / n) / (n - 1)
    return np.broadcast_to(n, sums.shape), sums / n, variance


def simulate(
    rng: np.random.Generator,
    draw_c: str,
    draw_t: str,
    *,
    effect: float = 0.0,
    batch_t: int = BATCH,
    experiments: int = EXPERIMENTS,
) -> Looks:
    """Simulate experiments drawing 'normal', 'lognormal' or 'bernoulli' (rate 0.1) + ``effect``."""

    def draw(kind: str, size: int, shift: float) -> FloatArray:
        shape = (experiments, LOOKS, size)
        if kind == "normal":
            return rng.standard_normal(shape) + shift
        if kind == "lognormal":  # skewed like spend or time-on-page; skewness about 6
            return rng.lognormal(0.0, 1.0, shape) + shift
        return (rng.random(shape) < 0.1 + shift).astype(np.float64)

    n_c, mean_c, var_c = _cumulative(draw(draw_c, BATCH, 0.0))
    n_t, mean_t, var_t = _cumulative(draw(draw_t, batch_t, effect))
    return Looks(n_c, mean_c, var_c, n_t, mean_t, var_t)


def sequential_p(looks: Looks, alpha: float = ALPHA) -> FloatArray:
    """The library's always-valid p at every look, with the default mixture (as msprt uses)."""
    tau2 = mixing_variance((looks.var_c + looks.var_t) / DEFAULT_TUNING_N, alpha)
    return always_valid_p(looks.mean_t - looks.mean_c, looks.variance, tau2)


def naive_welch_p(looks: Looks) -> FloatArray:
    """Fixed-horizon Welch p at every look, as if each look were the only one."""
    result = stats.ttest_ind_from_stats(
        looks.mean_t,
        np.sqrt(looks.var_t),
        looks.n_t,
        looks.mean_c,
        np.sqrt(looks.var_c),
        looks.n_c,
        equal_var=False,
    )
    return np.asarray(result.pvalue, dtype=np.float64)


# --- formula oracles ---------------------------------------------------------------------------


def test_likelihood_ratio_equals_numerical_mixture_integral() -> None:
    d, v, tau2 = 0.12, 0.0016, 0.01

    def integrand(theta: float, lower: float) -> float:
        # Likelihood ratio of N(theta, v) vs N(0, v) at d, weighted by the mixing density.
        ratio = math.exp((theta * d - theta * theta / 2) / v)
        weight = float(stats.norm.pdf(theta, scale=math.sqrt(tau2)))
        return ratio * weight * (2.0 if lower == 0.0 else 1.0)

    two_sided = integrate.quad(integrand, -np.inf, np.inf, args=(-1.0,))[0]
    one_sided = integrate.quad(integrand, 0.0, np.inf, args=(0.0,))[0]
    assert float(log_likelihood_ratio(d, v, tau2)) == pytest.approx(math.log(two_sided), rel=1e-7)
    assert float(log_likelihood_ratio(d, v, tau2, one_sided=True)) == pytest.approx(
        math.log(one_sided), rel=1e-7
    )


def test_p_value_by_hand() -> None:
    d, v, tau2 = 0.1, 0.002, 0.003
    lam = math.sqrt(v / (v + tau2)) * math.exp(tau2 * d * d / (2 * v * (v + tau2)))
    assert float(always_valid_p(d, v, tau2)) == pytest.approx(min(1.0, 1 / lam))
    assert float(always_valid_p(0.0, v, tau2)) == 1.0


def test_zero_lies_on_the_interval_boundary_exactly_when_p_equals_alpha() -> None:
    v, tau2 = 0.004, 0.02
    radius = float(confidence_radius(v, tau2, ALPHA))
    assert float(always_valid_p(radius, v, tau2)) == pytest.approx(ALPHA, rel=1e-10)
    assert float(always_valid_p(-radius, v, tau2)) == pytest.approx(ALPHA, rel=1e-10)
    assert float(always_valid_p(0.99 * radius, v, tau2)) > ALPHA


def test_always_valid_interval_is_wider_than_fixed_horizon() -> None:
    v = 0.01
    tau2 = float(mixing_variance(v, ALPHA))
    fixed_half_width = stats.norm.ppf(1 - ALPHA / 2) * math.sqrt(v)
    assert float(confidence_radius(v, tau2, ALPHA)) > fixed_half_width


def test_default_mixture_is_tightest_near_tuning_n() -> None:
    sigma2 = 2.0  # var_c + var_t
    tau2 = float(mixing_variance(sigma2 / 1000, ALPHA))
    n = np.arange(100, 20_000, dtype=np.float64)
    variance = sigma2 / n
    # The width relative to the fixed-horizon sqrt(V) is what the mixture trades across n.
    relative = confidence_radius(variance, tau2, ALPHA) / np.sqrt(variance)
    assert abs(n[np.argmin(relative)] - 1000) < 100


def test_msprt_on_moments_matches_the_vectorized_core() -> None:
    looks = simulate(np.random.default_rng(10), "normal", "normal", effect=0.05, experiments=5)
    p = sequential_p(looks)
    for e in range(5):
        for look in (0, 9, LOOKS - 1):
            control, treatment = looks.moments(e, look)
            result = msprt(control, treatment, alpha=ALPHA)
            assert result.always_valid_p == pytest.approx(p[e, look], rel=1e-9, abs=1e-300)
            assert result.difference == pytest.approx(treatment.mean - control.mean)


def test_explicit_tau_is_used() -> None:
    c, t = Moments.from_values([0.0, 1.0, 2.0]), Moments.from_values([1.0, 2.0, 4.0])
    result = msprt(c, t, tau=0.5)
    v = c.variance / 3 + t.variance / 3
    assert result.tau == 0.5
    assert result.always_valid_p == pytest.approx(float(always_valid_p(t.mean - c.mean, v, 0.25)))


def test_previous_look_gives_running_minimum_and_intersection() -> None:
    rng = np.random.default_rng(11)
    c1, t1 = Moments.from_values(rng.normal(size=500)), Moments.from_values(rng.normal(size=500))
    c2 = c1 + Moments.from_values(rng.normal(size=500))
    t2 = t1 + Moments.from_values(rng.normal(size=500))
    first = msprt(c1, t1)
    alone = msprt(c2, t2)
    chained = msprt(c2, t2, previous=first)
    assert chained.always_valid_p == min(first.always_valid_p, alone.always_valid_p)
    assert chained.always_valid_ci.low == max(first.always_valid_ci.low, alone.always_valid_ci.low)
    assert chained.always_valid_ci.high == min(
        first.always_valid_ci.high, alone.always_valid_ci.high
    )
    faked = type(first)(first.difference, first.always_valid_p, Interval(-1.0, 1.0, 0.9), 1.0)
    with pytest.raises(ValueError, match=r"`previous` was computed at level 0.9, not 0.95"):
        msprt(c2, t2, previous=faked)


def test_invalid_inputs_name_the_argument() -> None:
    one, two = Moments(1, 1.0, 1.0), Moments.from_values([1.0, 2.0])
    flat = Moments.from_values([2.0, 2.0])
    with pytest.raises(ValueError, match=r"`control` needs at least 2 observations"):
        msprt(one, two)
    with pytest.raises(ValueError, match=r"both have zero variance"):
        msprt(flat, flat)
    with pytest.raises(ValueError, match=r"`tau` must be positive \(got -1.0\)"):
        msprt(two, two, tau=-1.0)
    with pytest.raises(ValueError, match=r"`tuning_n` must be at least 2 \(got 1\)"):
        msprt(two, two, tuning_n=1)
    with pytest.raises(ValueError, match=r"`variance` must be positive and finite \(got 0.0\)"):
        always_valid_p(0.1, 0.0, 1.0)
    with pytest.raises(ValueError, match=r"`tau2` must be positive and finite \(got 1 bad"):
        always_valid_p([0.1, 0.2], [1.0, 1.0], [1.0, -1.0])


# --- A/A and power simulations -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("draw", "batch_t"),
    [("normal", BATCH), ("bernoulli", BATCH), ("lognormal", BATCH), ("normal", BATCH // 4)],
    ids=["normal", "bernoulli", "lognormal", "normal-80/20-split"],
)
def test_aa_false_positive_rate_under_continuous_peeking(draw: str, batch_t: int) -> None:
    looks = simulate(np.random.default_rng(20), draw, draw, batch_t=batch_t)
    sequential_rate = float(np.mean((sequential_p(looks) <= ALPHA).any(axis=1)))
    naive_rate = float(np.mean((naive_welch_p(looks) < ALPHA).any(axis=1)))
    print(
        f"\nA/A {draw} {BATCH}:{batch_t} per look, {LOOKS} looks, {EXPERIMENTS} experiments: "
        f"ever rejected  sequential={sequential_rate:.3f}  naive Welch={naive_rate:.3f}"
    )
    assert sequential_rate <= _allowed(ALPHA, EXPERIMENTS)
    assert naive_rate > 2 * ALPHA


def test_confidence_sequence_covers_a_true_nonzero_difference_at_every_look() -> None:
    effect = 0.2
    looks = simulate(np.random.default_rng(21), "normal", "normal", effect=effect)
    tau2 = mixing_variance((looks.var_c + looks.var_t) / DEFAULT_TUNING_N, ALPHA)
    radius = confidence_radius(looks.variance, tau2, ALPHA)
    missed = np.abs(looks.mean_t - looks.mean_c - effect) >= radius
    miss_rate = float(np.mean(missed.any(axis=1)))
    print(f"\ntrue difference ever outside the confidence sequence: {miss_rate:.3f}")
    assert miss_rate <= _allowed(ALPHA, EXPERIMENTS)


@pytest.mark.parametrize(
    ("draw", "effect", "minimum_power"),
    [("normal", 0.15, 0.9), ("bernoulli", 0.035, 0.9)],
)
def test_sequential_test_detects_a_real_effect(
    draw: str, effect: float, minimum_power: float
) -> None:
    looks = simulate(np.random.default_rng(22), draw, draw, effect=effect)
    p = sequential_p(looks)
    power = float(np.mean((p <= ALPHA).any(axis=1)))
    first = np.argmax(p <= ALPHA, axis=1)[(p <= ALPHA).any(axis=1)]
    print(
        f"\n{draw} effect {effect}: rejected in {power:.3f} of runs; "
        f"median first rejection at look {np.median(first) + 1:.0f} of {LOOKS}"
    )
    assert power >= minimum_power
    # Rejections are in the right direction.
    rejected = (p <= ALPHA).any(axis=1)
    final = (looks.mean_t - looks.mean_c)[:, -1]
    assert np.mean(final[rejected] > 0) > 0.99
