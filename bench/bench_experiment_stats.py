"""Benchmark: experiment results for 1M decisions, from numpy arrays to ExperimentResults.

Simulates one experiment (100k people, 3 arms, 1M decisions), then times each step the service
would run: sufficient statistics per arm with ``np.bincount`` (per decision, and per unit as the
analysis should be), and :func:`experiments.stats.results` with and without CUPED. A plain
``np.mean`` over the same reward array runs in the same process as the baseline. Prints a table;
figures are informative only and nothing here passes or fails on time.

Run: ``.venv/bin/python bench/bench_experiment_stats.py [--decisions N] [--units N]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from experiments.assignment import allocate, arm_for_bucket, bucket
from experiments.stats import (
    AnalysisConfig,
    ArmData,
    ExperimentResults,
    Guardrail,
    JointMoments,
    Moments,
    results,
)

T = TypeVar("T")

ARMS = [("control", 2), ("ranker-v2", 1), ("ranker-v3", 1)]
REWARD_RATE = {"control": 0.30, "ranker-v2": 0.31, "ranker-v3": 0.30}
DISMISS_RATE = {"control": 0.10, "ranker-v2": 0.10, "ranker-v3": 0.12}
CONFIG = AnalysisConfig(guardrails=(Guardrail("dismiss_rate", 0.05, "relative", False),))


@dataclass
class Log:
    """A decision log as columns: one row per decision."""

    unit: npt.NDArray[np.intp]  # index of the decision's unit
    arm: npt.NDArray[np.intp]  # index of the decision's arm
    reward: npt.NDArray[np.float64]
    dismissed: npt.NDArray[np.float64]
    unit_arm: npt.NDArray[np.intp]  # arm of each unit
    pre_period: npt.NDArray[np.float64]  # each unit's reward rate before the experiment


def timed(function: Callable[[], T], repeats: int) -> tuple[float, T]:
    """Median wall time in seconds over ``repeats`` runs, and the last result."""
    times = []
    result = function()
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def simulate(decisions: int, units: int, seed: int) -> tuple[Log, float]:
    rng = np.random.default_rng(seed)
    ranges = allocate(ARMS)
    names = [name for name, _ in ARMS]
    start = time.perf_counter()
    unit_arm = np.array(
        [
            names.index(arm_for_bucket(bucket(f"person-{u}", "bench-exp"), ranges))
            for u in range(units)
        ],
        dtype=np.intp,
    )
    assign_seconds = time.perf_counter() - start
    # Heavy users: decisions per person are skewed, as on the real tips page.
    activity = rng.gamma(0.7, size=units)
    unit = rng.choice(units, size=decisions, p=activity / activity.sum()).astype(np.intp)
    arm = unit_arm[unit]
    propensity = rng.beta(3, 7, size=units)  # each person's own taste, seen before and during
    rates = np.array([REWARD_RATE[n] for n in names])[arm] + 0.5 * (propensity[unit] - 0.3)
    reward = (rng.random(decisions) < np.clip(rates, 0, 1)).astype(np.float64)
    dismissed = (rng.random(decisions) < np.array([DISMISS_RATE[n] for n in names])[arm]).astype(
        np.float64
    )
    pre_period = np.clip(propensity + rng.normal(0, 0.05, size=units), 0, 1)
    return Log(unit, arm, reward, dismissed, unit_arm, pre_period), assign_seconds


def per_decision_moments(log: Log) -> tuple[Moments, ...]:
    return Moments.by_group(log.arm, log.reward, len(ARMS))


def per_unit_arms(log: Log, cuped: bool) -> list[ArmData]:
    """Aggregate decisions to units, then units to arms: what the service should analyse."""
    n_units = log.unit_arm.size
    decisions = np.bincount(log.unit, minlength=n_units)
    rewards = np.bincount(log.unit, weights=log.reward, minlength=n_units)
    seen = decisions > 0
    arm = log.unit_arm[seen]
    reward_rate = rewards[seen] / decisions[seen]
    k = len(ARMS)
    metric: tuple[Moments, ...] | tuple[JointMoments, ...]
    if cuped:
        metric = JointMoments.by_group(arm, log.pre_period[seen], reward_rate, k)
    else:
        metric = Moments.by_group(arm, reward_rate, k)
    units_per_arm = np.bincount(arm, minlength=k)
    decisions_per_arm = np.bincount(log.arm, minlength=k)
    dismissals = np.bincount(log.arm, weights=log.dismissed, minlength=k)
    return [
        ArmData(
            name=name,
            weight=weight,
            units=int(units_per_arm[i]),
            decisions=int(decisions_per_arm[i]),
            metric=metric[i],
            guardrails={
                # Per-decision dismiss rate: a guardrail flag, not the primary estimate.
                "dismiss_rate": Moments.bernoulli(int(decisions_per_arm[i]), int(dismissals[i]))
            },
        )
        for i, (name, weight) in enumerate(ARMS)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decisions", type=int, default=1_000_000)
    parser.add_argument("--units", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    print(f"simulating {args.decisions:,} decisions from {args.units:,} units ...", flush=True)
    log, assign_seconds = simulate(args.decisions, args.units, args.seed)
    arms_plain = per_unit_arms(log, cuped=False)
    arms_cuped = per_unit_arms(log, cuped=True)
    r = args.repeats

    rows: list[tuple[str, float]] = []
    baseline, _ = timed(lambda: float(np.mean(log.reward)), r)
    rows.append(("baseline: np.mean(reward), 1M decisions", baseline))
    rows.append(
        (
            "baseline: per-arm np.mean with masks",
            timed(lambda: [log.reward[log.arm == k].mean() for k in range(len(ARMS))], r)[0],
        )
    )
    rows.append(
        ("Moments.by_group per decision (bincount)", timed(lambda: per_decision_moments(log), r)[0])
    )
    rows.append(("per-unit aggregation -> ArmData", timed(lambda: per_unit_arms(log, False), r)[0]))
    rows.append(
        ("per-unit aggregation -> ArmData, CUPED", timed(lambda: per_unit_arms(log, True), r)[0])
    )
    plain_seconds, plain = timed(lambda: results(arms_plain, control="control", config=CONFIG), r)
    rows.append(("results() from sufficient statistics", plain_seconds))
    cuped_seconds, cuped = timed(lambda: results(arms_cuped, control="control", config=CONFIG), r)
    rows.append(("results() with CUPED", cuped_seconds))
    end_to_end, _ = timed(
        lambda: results(per_unit_arms(log, True), control="control", config=CONFIG), r
    )
    rows.append(("end to end: arrays -> results (CUPED)", end_to_end))

    print(f"\nassigning {args.units:,} units with sha256 took {assign_seconds * 1e3:.1f} ms (once)")
    print(f"\n{'step':<46} {'median ms':>10} {'x baseline':>11}")
    print("-" * 69)
    for name, seconds in rows:
        print(f"{name:<46} {seconds * 1e3:>10.3f} {seconds / baseline:>11.1f}")
    print(f"\n(median of {r} runs each; numpy {np.__version__})")
    _summary("without CUPED", plain)
    _summary("with CUPED", cuped)


def _summary(label: str, out: ExperimentResults) -> None:
    print(f"\n{label}: SRM p={out.srm.p_value:.3f}", end="")
    if out.cuped is not None:
        reduction = ", ".join(f"{v:.0%}" for v in out.cuped.variance_reduction)
        print(f", theta={out.cuped.theta:.3f}, variance reduction {reduction}", end="")
    print()
    for arm in out.arms:
        if arm.is_control or arm.sequential is None:
            continue
        ci = arm.sequential.always_valid_ci
        guard = "BREACHED" if arm.guardrail_breached else "ok"
        print(
            f"  {arm.name:<10} diff={arm.sequential.difference:+.4f} "
            f"always-valid CI [{ci.low:+.4f}, {ci.high:+.4f}] "
            f"p={arm.sequential.always_valid_p:.3g} verdict={arm.verdict} guardrails={guard}"
        )


if __name__ == "__main__":
    main()
