"""An experiment's results from per-arm sufficient statistics aggregated in SQL.

One query, two levels of GROUP BY: first per (arm, unit), then per arm, so the database hands
over a few numbers per arm however many decisions there are. Only learned decisions count (their
reward is joined and final: `learned_reward` is not null). The unit is the unit of assignment:
the decision's principal (the person) on the tips surface, the event id on surfaces in
`PER_EVENT_SURFACES` (Personalizer, where one subscription key is one principal).

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
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bandit.events import utcnow
from bandit.tables import DecisionRow, RewardRow
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

decisions = cast(sa.Table, DecisionRow.__table__)  # type: ignore[attr-defined]
rewards = cast(sa.Table, RewardRow.__table__)  # type: ignore[attr-defined]

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


def arm_data(engine: Engine, experiment: Experiment, now: datetime | None = None) -> list[ArmData]:
    """Per-arm sufficient statistics of `experiment`, in the order of its arms.

    The primary metric is `JointMoments` (CUPED covariate and metric) when at least one unit has
    pre-period data, plain `Moments` otherwise.
    """
    per_event = experiment.surface in PER_EVENT_SURFACES
    unit = decisions.c.event_id if per_event else decisions.c.principal
    dismissed = sa.case((rewards.c.reaction == "dismiss", 1.0), else_=0.0)
    per_unit = (
        sa.select(
            decisions.c.arm.label("arm"),
            unit.label("unit"),
            sa.func.count().label("n"),
            (sa.func.sum(decisions.c.learned_reward) / sa.func.count()).label("reward"),
            (sa.func.sum(dismissed) / sa.func.count()).label("dismiss"),
        )
        .select_from(decisions.outerjoin(rewards, rewards.c.event_id == decisions.c.event_id))
        .where(
            decisions.c.experiment == experiment.name,
            decisions.c.surface == experiment.surface,
            decisions.c.learned_reward.is_not(None),
        )
        .group_by(decisions.c.arm, unit)
        .subquery()
    )
    n = sa.cast(per_unit.c.n, sa.Float)
    reward = per_unit.c.reward
    columns = [
        per_unit.c.arm,
        sa.func.count().label("units"),
        sa.func.sum(per_unit.c.n).label("decisions"),
        sa.func.sum(reward).label("reward_sum"),
        sa.func.sum(reward * reward).label("reward_sq"),
        sa.func.sum(per_unit.c.dismiss).label("dismiss_sum"),
        sa.func.sum(per_unit.c.dismiss * per_unit.c.dismiss).label("dismiss_sq"),
        sa.func.sum(n * n).label("n_sq"),
    ]
    source: sa.FromClause = per_unit
    started_at = None if per_event else experiment.started_at
    if started_at is not None:
        pre = _pre_period(experiment, started_at)
        x = pre.c.x
        source = per_unit.outerjoin(pre, pre.c.unit == per_unit.c.unit)
        columns += [
            sa.func.count(x).label("pre_units"),
            sa.func.sum(x).label("pre_sum"),
            sa.func.sum(x * x).label("pre_sq"),
            sa.func.sum(x * reward).label("pre_cross"),
            # The metric's sum over the units that have a covariate; the rest get the pooled mean.
            sa.func.sum(sa.case((x.is_not(None), reward), else_=0.0)).label("pre_reward_sum"),
        ]
    per_arm = sa.select(*columns).select_from(source).group_by(per_unit.c.arm)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # One group per unit: give the hash aggregate room so it does not spill to disk.
            conn.execute(sa.text("SET LOCAL work_mem = '64MB'"))
        rows = {row.arm: row for row in conn.execute(per_arm)}
    covariate = _covariate(list(rows.values())) if started_at is not None else None
    days = days_running(experiment, now)
    data = []
    for arm in experiment.arms:
        row = rows.get(arm.name)
        units = int(row.units) if row is not None else 0
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
        count = int(row.decisions)
        metric = Moments(units, float(row.reward_sum), float(row.reward_sq))
        data.append(
            ArmData(
                name=arm.name,
                weight=arm.weight,
                units=units,
                decisions=count,
                metric=metric if covariate is None else _joint(row, metric, covariate),
                guardrails={
                    "dismiss_rate": Moments(units, float(row.dismiss_sum), float(row.dismiss_sq)),
                    "tips_per_day": Moments(units, count / days, float(row.n_sq) / days**2),
                },
            )
        )
    return data


def _pre_period(experiment: Experiment, started_at: datetime) -> sa.Subquery:
    """Each unit's mean learned reward on the surface in the `PRE_PERIOD` before the start."""
    return (
        sa.select(
            decisions.c.principal.label("unit"),
            sa.func.avg(decisions.c.learned_reward).label("x"),
        )
        .where(
            decisions.c.surface == experiment.surface,
            decisions.c.created_at >= started_at - PRE_PERIOD,
            decisions.c.created_at < started_at,
            decisions.c.learned_reward.is_not(None),
            # The experiment's own decisions are never pre-period, even under clock skew.
            sa.or_(decisions.c.experiment.is_(None), decisions.c.experiment != experiment.name),
        )
        .group_by(decisions.c.principal)
        .subquery()
    )


def _covariate(rows: Collection[sa.Row[Any]]) -> float | None:
    """The pooled pre-period mean over units that have one; None when no unit has one."""
    units = sum(int(row.pre_units) for row in rows)
    if units == 0:
        return None
    return sum(float(row.pre_sum or 0.0) for row in rows) / units


def _joint(row: sa.Row[Any], metric: Moments, covariate: float) -> JointMoments:
    """The arm's joint moments, units without pre-period data taking `covariate` as theirs."""
    with_pre = int(row.pre_units)
    missing = metric.n - with_pre
    pre_sum = float(row.pre_sum or 0.0)
    pre_sq = float(row.pre_sq or 0.0)
    pre_cross = float(row.pre_cross or 0.0)
    missing_reward = metric.sum - float(row.pre_reward_sum or 0.0)
    return JointMoments(
        n=metric.n,
        sum_x=pre_sum + missing * covariate,
        sum_y=metric.sum,
        sum_xx=pre_sq + missing * covariate * covariate,
        sum_yy=metric.sum_sq,
        sum_xy=pre_cross + covariate * missing_reward,
    )


def experiment_results(
    engine: Engine, experiment: Experiment, now: datetime | None = None
) -> ExperimentResults:
    """Everything `experiments.stats.results` says about `experiment` at this look."""
    return results(
        arm_data(engine, experiment, now),
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
