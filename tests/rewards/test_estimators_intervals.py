"""Statistical properties on seeded synthetic logs whose true target value is known exactly.

The world: ``K = 5`` actions, 20 equally likely contexts, Bernoulli rewards with known means
``μ(x, a)``; an epsilon-greedy-softmax logging policy (smallest propensity 0.04) and a target
policy that is 90% greedy on ``μ``, so importance weights reach about 19. The target's value is
``V = mean_x Σ_a π(a|x) μ(x, a)``, computed exactly.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pytest
from scipy import optimize, special

from rewards.estimators import (
    Estimate,
    Interval,
    IntervalMethod,
    base,
    bootstrap,
    clipped_ips,
    cressie_read,
    dm,
    dr,
    dr_os,
    ips,
    sndr,
    snips,
    switch_dr,
)

Array = npt.NDArray[np.float64]
Batch = dict[str, Array]

REPLICATIONS = 200
N_EVENTS = 1_000
ALPHA = 0.05
MIN_COVERAGE = 0.90


@dataclass(frozen=True)
class World:
    mu: Array  # (contexts, K) Bernoulli reward means
    p_log: Array  # (contexts, K) logging pmfs
    p_target: Array  # (contexts, K) target pmfs
    model: Array  # (contexts, K) an imperfect reward model
    truth: float
    max_weight: float

    def log(self, rng: np.random.Generator, n: int, model: Array | None = None) -> Batch:
        """``n`` logged events: contexts, actions drawn from the logging policy, rewards."""
        r_hat_table = self.model if model is None else model
        x = rng.integers(0, self.mu.shape[0], n)
        cdf = self.p_log[x].cumsum(axis=1)
        a = np.minimum((cdf < rng.random(n)[:, None]).sum(axis=1), self.mu.shape[1] - 1)
        reward = (rng.random(n) < self.mu[x, a]).astype(np.float64)
        return {
            "p_log": self.p_log[x, a],
            "reward": reward,
            "p_target": self.p_target[x, a],
            "r_hat": r_hat_table[x, a],
            "v_hat": (self.p_target * r_hat_table).sum(axis=1)[x],
        }


def _world() -> World:
    rng = np.random.default_rng(12345)
    contexts, k, epsilon = 20, 5, 0.2
    mu = rng.uniform(0.1, 0.9, size=(contexts, k))
    scores = np.exp(rng.normal(size=(contexts, k)))
    p_log = (1 - epsilon) * scores / scores.sum(axis=1, keepdims=True) + epsilon / k
    p_target = np.full((contexts, k), 0.1 / k)
    p_target[np.arange(contexts), mu.argmax(axis=1)] += 0.9
    model = np.clip(mu + rng.normal(0.0, 0.15, size=mu.shape), 0.0, 1.0)
    return World(
        mu=mu,
        p_log=p_log,
        p_target=p_target,
        model=model,
        truth=float((p_target * mu).sum(axis=1).mean()),
        max_weight=float((p_target / p_log).max()),
    )


WORLD = _world()


def _ips() -> ips.Estimator:
    return ips.Estimator(reward_range=(0.0, 1.0), max_weight=WORLD.max_weight)


def _snips() -> snips.Estimator:
    return snips.Estimator(reward_range=(0.0, 1.0), max_weight=WORLD.max_weight)


def _dr() -> dr.Estimator:
    return dr.Estimator(reward_range=(0.0, 1.0), max_weight=WORLD.max_weight)


COVERED: dict[str, Callable[[], base.Estimator]] = {"ips": _ips, "snips": _snips, "dr": _dr}


@dataclass(frozen=True)
class Replications:
    values: dict[str, Array]  # estimator -> (REPLICATIONS,)
    covered: dict[tuple[str, str], Array]  # (estimator, method) -> (REPLICATIONS,) bool
    widths: dict[tuple[str, str], Array]


@pytest.fixture(scope="module")
def replications() -> Replications:
    values: dict[str, list[float]] = {}
    covered: dict[tuple[str, str], list[bool]] = {}
    widths: dict[tuple[str, str], list[float]] = {}
    for rep in range(REPLICATIONS):
        batch = WORLD.log(np.random.default_rng(rep), N_EVENTS)
        for name, make in COVERED.items():
            est = make()
            est.add_batch(batch)
            values.setdefault(name, []).append(est.get())
            intervals: dict[str, Interval] = {
                m: est.interval(ALPHA, m) for m in est.interval_methods
            }
            intervals["bootstrap"] = est.bootstrap_interval(batch, alpha=ALPHA, rng=rep)
            for method, ci in intervals.items():
                covered.setdefault((name, method), []).append(WORLD.truth in ci)
                widths.setdefault((name, method), []).append(ci.width)
    return Replications(
        values={k: np.array(v) for k, v in values.items()},
        covered={k: np.array(v) for k, v in covered.items()},
        widths={k: np.array(v) for k, v in widths.items()},
    )


def test_world_truth_matches_on_policy_simulation() -> None:
    rng = np.random.default_rng(99)
    n = 400_000
    x = rng.integers(0, WORLD.mu.shape[0], n)
    a = np.minimum((WORLD.p_target[x].cumsum(axis=1) < rng.random(n)[:, None]).sum(axis=1), 4)
    reward = rng.random(n) < WORLD.mu[x, a]
    assert abs(reward.mean() - WORLD.truth) < 4 * np.sqrt(0.25 / n)
    assert 0.6 < WORLD.truth < 0.8
    assert 15.0 < WORLD.max_weight < 25.0


@pytest.mark.parametrize(
    ("name", "method"),
    [
        ("ips", "gaussian"),
        ("ips", "cressie_read"),
        ("ips", "bernstein"),
        ("ips", "bootstrap"),
        ("snips", "gaussian"),
        ("snips", "cressie_read"),
        ("snips", "bootstrap"),
        ("dr", "gaussian"),
        ("dr", "bernstein"),
        ("dr", "bootstrap"),
    ],
)
def test_intervals_cover_the_true_value(replications: Replications, name: str, method: str) -> None:
    rate = replications.covered[(name, method)].mean()
    assert rate >= MIN_COVERAGE, f"{name}/{method} covered the truth in {rate:.1%}"


@pytest.mark.parametrize("name", sorted(COVERED))
def test_gaussian_intervals_are_not_needlessly_wide(replications: Replications, name: str) -> None:
    assert replications.covered[(name, "gaussian")].mean() <= 0.99


def test_ips_is_unbiased(replications: Replications) -> None:
    values = replications.values["ips"]
    standard_error = values.std(ddof=1) / np.sqrt(len(values))
    assert abs(values.mean() - WORLD.truth) < 3 * standard_error


def test_dr_is_unbiased_with_an_imperfect_model(replications: Replications) -> None:
    values = replications.values["dr"]
    standard_error = values.std(ddof=1) / np.sqrt(len(values))
    assert abs(values.mean() - WORLD.truth) < 3 * standard_error


def test_self_normalizing_and_dr_lower_the_variance(replications: Replications) -> None:
    ips_var = replications.values["ips"].var()
    assert replications.values["snips"].var() < ips_var
    assert replications.values["dr"].var() < ips_var


def test_dr_with_a_perfect_model_beats_ips() -> None:
    ips_values: list[float] = []
    dr_values: list[float] = []
    ips_widths: list[float] = []
    dr_widths: list[float] = []
    for rep in range(100):
        batch = WORLD.log(np.random.default_rng(10_000 + rep), 500, model=WORLD.mu)
        for est, values, widths in (
            (_ips(), ips_values, ips_widths),
            (_dr(), dr_values, dr_widths),
        ):
            est.add_batch(batch)
            values.append(est.get())
            widths.append(est.interval().width)
    assert np.var(dr_values) < 0.5 * np.var(ips_values)
    assert np.mean(dr_widths) < np.mean(ips_widths)


SHRINKING: list[tuple[Callable[[], base.Estimator], IntervalMethod]] = [
    (_ips, "gaussian"),
    (_ips, "cressie_read"),
    (_ips, "bernstein"),
    (_snips, "gaussian"),
    (_snips, "cressie_read"),
    (_dr, "gaussian"),
    (_dr, "bernstein"),
    (lambda: clipped_ips.Estimator(5.0, reward_range=(0.0, 1.0)), "bernstein"),
    (lambda: dm.Estimator(reward_range=(0.0, 1.0)), "bernstein"),
    (lambda: sndr.Estimator(), "gaussian"),
    (lambda: switch_dr.Estimator(10.0, reward_range=(0.0, 1.0)), "bernstein"),
    (lambda: dr_os.Estimator(20.0, reward_range=(0.0, 1.0)), "gaussian"),
]


@pytest.mark.parametrize(("make", "method"), SHRINKING)
def test_intervals_tighten_as_data_grows(
    make: Callable[[], base.Estimator], method: IntervalMethod
) -> None:
    batch = WORLD.log(np.random.default_rng(7), 16_000)
    widths = []
    for n in (250, 1_000, 4_000, 16_000):
        est = make()
        est.add_batch({k: v[:n] for k, v in batch.items()})
        widths.append(est.interval(ALPHA, method).width)
    assert all(a > b for a, b in itertools.pairwise(widths)), widths
    assert widths[-1] < 0.6 * widths[1]  # 16x the data, at most ~1/4 the width for √n rates


def test_gaussian_width_scales_as_one_over_root_n() -> None:
    batch = WORLD.log(np.random.default_rng(8), 40_000)
    small, large = _ips(), _ips()
    small.add_batch({k: v[:10_000] for k, v in batch.items()})
    large.add_batch(batch)
    assert small.interval().width / large.interval().width == pytest.approx(2.0, rel=0.1)


def test_bootstrap_is_seeded_and_tracks_the_standard_error() -> None:
    batch = WORLD.log(np.random.default_rng(5), 3_000)
    est = _ips()
    est.add_batch(batch)
    assert est.bootstrap_interval(batch, rng=3) == est.bootstrap_interval(batch, rng=3)
    assert est.bootstrap_interval(batch, rng=3) != est.bootstrap_interval(batch, rng=4)
    assert est.bootstrap_interval(batch, rng=np.random.default_rng(3)) == est.bootstrap_interval(
        batch, rng=3
    )

    # 2000 resamples of 3000 events exceed one batch of indices: exercises the batching.
    w_r = batch["p_target"] / batch["p_log"] * batch["reward"]
    columns = np.stack([w_r])
    replicates = bootstrap.replicates(
        columns, lambda sums, n: sums[:, 0] / n, n_resamples=2_000, rng=1
    )
    assert replicates.shape == (2_000,)
    assert replicates.mean() == pytest.approx(w_r.mean(), abs=0.01)
    assert replicates.std() == pytest.approx(w_r.std() / np.sqrt(len(w_r)), rel=0.1)


def test_estimate_bundles_value_interval_and_weights() -> None:
    batch = WORLD.log(np.random.default_rng(6), 2_000)
    est = _snips()
    est.add_batch(batch)
    result = est.estimate(alpha=0.1, method="cressie_read")
    assert isinstance(result, Estimate)
    assert result.value == est.get()
    assert result.ci == est.interval(0.1, "cressie_read")
    assert (result.n, result.alpha, result.method) == (2_000, 0.1, "cressie_read")
    assert result.weights == est.weights
    assert result.weights.max <= WORLD.max_weight
    assert 0.0 < result.weights.ess_ratio < 1.0
    assert result.weights.mean == pytest.approx(1.0, abs=0.1)


def test_cressie_read_stays_in_the_reward_range_and_is_tighter_with_known_max_weight() -> None:
    batch = WORLD.log(np.random.default_rng(4), 300)
    bounded, unbounded = _ips(), ips.Estimator(reward_range=(0.0, 1.0))
    bounded.add_batch(batch)
    unbounded.add_batch(batch)
    ci = bounded.interval(method="cressie_read")
    assert 0.0 <= ci.low < ci.high <= 1.0
    assert ci.width <= unbounded.interval(method="cressie_read").width
    assert bounded.get() in unbounded.interval(method="cressie_read")


def _dot(g: Array, q: Array) -> float:
    return float(q @ g)


def _cr_by_optimization(w: Array, r: Array, alpha: float, w_max: float) -> tuple[float, float]:
    """The Cressie-Read interval solved numerically (SLSQP), independently of the closed form.

    Over m = n + 1 points (the events and a phantom of weight w_f in {0, w_max} whose reward sits
    at the bound), find probabilities q with Σq = 1, Σ q w = 1 and m Σ (q - 1/m)² within the
    radius, extremizing Σ q w r. The radius is the smallest such divergence (phantom at the far
    end, numerically too) plus the F(1, n) quantile over m.
    """
    n = len(w)
    m = n + 1

    def divergence(q: Array) -> float:
        return float(m * np.sum((q - 1.0 / m) ** 2))

    def solve(objective: Callable[[Array], float], weights: Array, radius: float | None) -> float:
        constraints = [
            {"type": "eq", "fun": lambda q: np.sum(q) - 1.0},
            {"type": "eq", "fun": lambda q: q @ weights - 1.0},
        ]
        if radius is not None:
            constraints.append({"type": "ineq", "fun": lambda q: radius - divergence(q)})
        result = optimize.minimize(
            objective,
            np.full(m, 1.0 / m),
            method="SLSQP",
            constraints=constraints,
            options={"ftol": 1e-14, "maxiter": 500},
        )
        return float(result.fun)

    w_far = w_max if w.sum() < n else 0.0
    profile = solve(divergence, np.append(w, w_far), None)
    radius = profile + float(special.fdtri(1, n, 1 - alpha)) / m
    lows, highs = [], []
    for w_fake in (0.0, w_max):
        weights = np.append(w, w_fake)
        to_low, to_high = weights * np.append(r, 0.0), weights * np.append(r, 1.0)
        lows.append(solve(functools.partial(_dot, to_low), weights, radius))
        highs.append(-solve(functools.partial(_dot, -to_high), weights, radius))
    return max(min(lows), 0.0), min(max(highs), 1.0)


def test_cressie_read_closed_form_matches_numerical_optimization() -> None:
    rng = np.random.default_rng(21)
    for n, scale in ((8, 1.0), (12, 0.7), (15, 1.4)):
        w = rng.exponential(scale, n)
        r = rng.random(n)
        w_max = float(w.max()) + 2.0
        low, high = _cr_by_optimization(w, r, 0.1, w_max)
        ci = cressie_read.interval(
            n=n,
            sum_w=float(w.sum()),
            sum_w2=float(w @ w),
            sum_wr=float(w @ r),
            sum_w2r=float((w * w) @ r),
            sum_w2r2=float((w * w) @ (r * r)),
            reward_range=(0.0, 1.0),
            weight_range=(0.0, w_max),
            alpha=0.1,
        )
        assert ci.low == pytest.approx(low, abs=1e-5)
        assert ci.high == pytest.approx(high, abs=1e-5)


def test_bernstein_is_wider_than_gaussian_but_tighter_with_clipping() -> None:
    batch = WORLD.log(np.random.default_rng(9), 5_000)
    plain, clipped = _ips(), clipped_ips.Estimator(5.0, reward_range=(0.0, 1.0))
    plain.add_batch(batch)
    clipped.add_batch(batch)
    assert plain.interval(method="bernstein").width > plain.interval().width
    assert clipped.interval(method="bernstein").width < plain.interval(method="bernstein").width


def test_degenerate_inputs_give_safe_intervals() -> None:
    est = _ips()
    est.add(0.5, 1.0, 0.5)
    assert est.interval() == Interval(float("-inf"), float("inf"))
    assert est.interval(method="bernstein") == Interval(0.0, 1.0)
    est = _snips()
    est.add_arrays([0.5, 0.5], [1.0, 0.0], [0.0, 0.0])  # the target never agrees with the log
    assert np.isnan(est.get())
    assert est.interval() == Interval(float("-inf"), float("inf"))
