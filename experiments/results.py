"""An experiment's results from per-arm sufficient statistics aggregated in SQL.

One query (`bandit`'s `Store.arm_aggregates`), two levels of GROUP BY: first per (arm, unit),
then per arm, so the database hands over a few numbers per arm however many decisions there are.
Only learned decisions count (their reward is joined and final: `learned_reward` is not null).
The unit is the unit of assignment: the decision's principal (the person) on the tips surface,
the event id on surfaces in `PER_EVENT_SURFACES` (Personalizer, where one subscription key is
one principal).

Metrics, one value per unit (the unit of randomization; see `experiments.stats.moments`):

* primary, `mean_reward`: the unit's mean learned reward;
* guardrail `dismiss_rate`: the share of the unit's decisions whose reaction was "dismiss"
  (higher is worse; breached when it rises by more than 0.05 absolute);
* guardrail `tips_per_day`: the unit's decisions divided by the experiment's days so far (from
  `started_at` to `stopped_at` or now, at least one day; paused time counts) — higher is better;
  breached when it falls by more than 20 %.

CUPED (see `experiments.stats.cuped`): the covariate of a unit is its mean learned reward over
decisions on the same surface created in the `PRE_PERIOD` (14 days) before the experiment's
`started_at`, whatever their policy or experiment (none, or an earlier one). Assignment comes after
all of them, so the covariate is independent of the arm, which is all CUPED needs; counting
earlier experiments' traffic gives more units a covariate, and a unit's reward under another
policy still predicts its reward here. Units without pre-period decisions get the pooled
pre-period mean (over the experiment's units that have one) as their covariate, the usual CUPED
fallback: their covariate sits at the centre, so their own metric is left unadjusted. When no
unit has pre-period data, or on surfaces in `PER_EVENT_SURFACES` (an event id has no history),
the primary metric stays plain `Moments` and the results are exactly the unadjusted ones.

The pre-period aggregate is a per-unit subquery LEFT JOINed to the per-unit in-experiment values,
inside the same query, so CUPED costs no extra round trip.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime, timedelta

from bandit.events import utcnow
from bandit.store import ArmAggregate, PrePeriodSums, Store
from experiments.lifecycle import PER_EVENT_SURFACES, Experiment
from experiments.stats import (
    AnalysisConfig,
    ArmData,
    ExperimentResults,
    Guardrail,
    JointMoments,
    MinimumData,
    Moments,
    results,
)

PRE_PERIOD = timedelta(days=14)
"""How far before `started_at` a unit's decisions count towards its CUPED covariate."""

GUARDRAILS = (
    Guardrail("dismiss_rate", 0.05, kind="absolute", higher_is_better=False),
    Guardrail("tips_per_day", 0.2, kind="relative", higher_is_better=True),
)


def config_for(experiment: Experiment) -> AnalysisConfig:
    return AnalysisConfig(
        minimum=MinimumData(experiment.min_units_per_arm, experiment.min_decisions_per_arm),
        guardrails=GUARDRAILS,
    )


def days_running(experiment: Experiment, now: datetime | None = None) -> float:
    if experiment.started_at is None:
        return 1.0
    until = experiment.stopped_at or now or utcnow()
    return max(1.0, (until - experiment.started_at).total_seconds() / 86_400)


def arm_data(store: Store, experiment: Experiment, now: datetime | None = None) -> list[ArmData]:
    """Per-arm sufficient statistics of `experiment`, in the order of its arms.

    The primary metric is `JointMoments` (CUPED covariate and metric) when at least one unit has
    pre-period data, plain `Moments` otherwise.
    """
    per_event = experiment.surface in PER_EVENT_SURFACES
    started_at = None if per_event else experiment.started_at
    rows = store.arm_aggregates(
        experiment.name,
        experiment.surface,
        unit="event" if per_event else "principal",
        counted_reaction="dismiss",
        pre_period=None if started_at is None else (started_at - PRE_PERIOD, started_at),
    )
    covariate = _covariate(list(rows.values())) if started_at is not None else None
    days = days_running(experiment, now)
    data = []
    for arm in experiment.arms:
        row = rows.get(arm.name)
        units = row.units if row is not None else 0
        if row is None or units == 0:
            empty = Moments(0, 0.0, 0.0)
            data.append(
                ArmData(
                    arm.name,
                    arm.weight,
                    0,
                    0,
                    JointMoments(0, 0.0, 0.0, 0.0, 0.0, 0.0) if covariate is not None else empty,
                    {"dismiss_rate": empty, "tips_per_day": empty},
                )
            )
            continue
        count = row.decisions
        metric = Moments(units, row.reward_sum, row.reward_sq)
        data.append(
            ArmData(
                name=arm.name,
                weight=arm.weight,
                units=units,
                decisions=count,
                metric=metric if covariate is None else _joint(row, metric, covariate),
                guardrails={
                    "dismiss_rate": Moments(units, row.reaction_sum, row.reaction_sq),
                    "tips_per_day": Moments(units, count / days, row.n_sq / days**2),
                },
            )
        )
    return data


def _covariate(rows: Collection[ArmAggregate]) -> float | None:
    """The pooled pre-period mean over units that have one; None when no unit has one."""
    pre = [row.pre_period for row in rows if row.pre_period is not None]
    units = sum(p.units for p in pre)
    if units == 0:
        return None
    return sum(p.sum_x for p in pre) / units


def _joint(row: ArmAggregate, metric: Moments, covariate: float) -> JointMoments:
    """The arm's joint moments, units without pre-period data taking `covariate` as theirs."""
    pre = row.pre_period or PrePeriodSums(0, 0.0, 0.0, 0.0, 0.0)
    missing = metric.n - pre.units
    missing_reward = metric.sum - pre.sum_y
    return JointMoments(
        n=metric.n,
        sum_x=pre.sum_x + missing * covariate,
        sum_y=metric.sum,
        sum_xx=pre.sum_xx + missing * covariate * covariate,
        sum_yy=metric.sum_sq,
        sum_xy=pre.sum_xy + covariate * missing_reward,
    )


def experiment_results(
    store: Store, experiment: Experiment, now: datetime | None = None
) -> ExperimentResults:
    """Everything `experiments.stats.results` says about `experiment` at this look."""
    return results(
        arm_data(store, experiment, now),
        control=experiment.control,
        config=config_for(experiment),
    )


def winner(outcome: ExperimentResults) -> str | None:
    """The treatment to ship: better than control, no guardrail breached, highest mean."""
    better = [
        arm
        for arm in outcome.arms
        if arm.verdict == "treatment_better" and not arm.guardrail_breached
    ]
    if not better:
        return None
    return max(better, key=lambda arm: arm.mean or 0.0).name
