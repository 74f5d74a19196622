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
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

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
    MinimumData,
    Moments,
    results,
)

decisions = cast(sa.Table, DecisionRow.__table__)  # type: ignore[attr-defined]
rewards = cast(sa.Table, RewardRow.__table__)  # type: ignore[attr-defined]

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
    """Per-arm sufficient statistics of `experiment`, in the order of its arms."""
    per_event = experiment.surface in PER_EVENT_SURFACES
    unit = decisions.c.event_id if per_event else decisions.c.principal
    dismissed = sa.case((rewards.c.reaction == "dismiss", 1.0), else_=0.0)
    per_unit = (
        sa.select(
            decisions.c.arm.label("arm"),
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
    per_arm = sa.select(
        per_unit.c.arm,
        sa.func.count().label("units"),
        sa.func.sum(per_unit.c.n).label("decisions"),
        sa.func.sum(per_unit.c.reward).label("reward_sum"),
        sa.func.sum(per_unit.c.reward * per_unit.c.reward).label("reward_sq"),
        sa.func.sum(per_unit.c.dismiss).label("dismiss_sum"),
        sa.func.sum(per_unit.c.dismiss * per_unit.c.dismiss).label("dismiss_sq"),
        sa.func.sum(n * n).label("n_sq"),
    ).group_by(per_unit.c.arm)
    with engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # One group per unit: give the hash aggregate room so it does not spill to disk.
            conn.execute(sa.text("SET LOCAL work_mem = '64MB'"))
        rows = {row.arm: row for row in conn.execute(per_arm)}
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
                    empty,
                    {"dismiss_rate": empty, "tips_per_day": empty},
                )
            )
            continue
        count = int(row.decisions)
        data.append(
            ArmData(
                name=arm.name,
                weight=arm.weight,
                units=units,
                decisions=count,
                metric=Moments(units, float(row.reward_sum), float(row.reward_sq)),
                guardrails={
                    "dismiss_rate": Moments(units, float(row.dismiss_sum), float(row.dismiss_sq)),
                    "tips_per_day": Moments(units, count / days, float(row.n_sq) / days**2),
                },
            )
        )
    return data


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
