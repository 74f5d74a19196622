"""Experiment reads: per-arm aggregates of an experiment's learned decisions, summed in SQL.

The database hands over a few numbers per arm however many decisions there are; what they mean
statistically (units, CUPED, guardrails) is `experiments.results`'s business.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa

from bandit.store.database import Database
from bandit.store.records import ArmAggregate, PrePeriodSums, RewardBucket
from bandit.store.rows import decisions, rewards


class Arms(Database):
    """What an experiment's arms logged."""

    def arm_aggregates(
        self,
        experiment: str,
        surface: str,
        *,
        unit: Literal["principal", "event"],
        counted_reaction: str,
        pre_period: tuple[datetime, datetime] | None = None,
    ) -> dict[str, ArmAggregate]:
        """Arm name -> sums over its units of the learned decisions of `experiment` on `surface`.

        One query, two levels of GROUP BY: first per (arm, unit), then per arm. A unit is a
        principal, or each decision on its own (`unit="event"`). Per unit: its decision count
        `n`, its mean learned reward, and the share of its decisions whose reaction is
        `counted_reaction`. Arms without learned decisions are absent.

        With `pre_period = (start, end)`, each unit (a principal) also gets a covariate: its mean
        learned reward over the decisions on `surface` created in [start, end) outside this
        experiment, LEFT JOINed inside the same query (no extra round trip).
        """
        if pre_period is not None and unit != "principal":
            raise ValueError("`pre_period` needs `unit='principal'`: an event has no history")
        unit_column = decisions.c.event_id if unit == "event" else decisions.c.principal
        counted = sa.case((rewards.c.reaction == counted_reaction, 1.0), else_=0.0)
        per_unit = (
            sa.select(
                decisions.c.arm.label("arm"),
                unit_column.label("unit"),
                sa.func.count().label("n"),
                (sa.func.sum(decisions.c.learned_reward) / sa.func.count()).label("reward"),
                (sa.func.sum(counted) / sa.func.count()).label("counted"),
            )
            .select_from(decisions.outerjoin(rewards, rewards.c.event_id == decisions.c.event_id))
            .where(
                decisions.c.experiment == experiment,
                decisions.c.surface == surface,
                decisions.c.learned_reward.is_not(None),
            )
            .group_by(decisions.c.arm, unit_column)
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
            sa.func.sum(per_unit.c.counted).label("counted_sum"),
            sa.func.sum(per_unit.c.counted * per_unit.c.counted).label("counted_sq"),
            sa.func.sum(n * n).label("n_sq"),
        ]
        source: sa.FromClause = per_unit
        if pre_period is not None:
            pre = _pre_period(experiment, surface, *pre_period)
            x = pre.c.x
            source = per_unit.outerjoin(pre, pre.c.unit == per_unit.c.unit)
            columns += [
                sa.func.count(x).label("pre_units"),
                sa.func.sum(x).label("pre_sum"),
                sa.func.sum(x * x).label("pre_sq"),
                sa.func.sum(x * reward).label("pre_cross"),
                # The metric's sum over the units that have a covariate.
                sa.func.sum(sa.case((x.is_not(None), reward), else_=0.0)).label("pre_reward_sum"),
            ]
        per_arm = sa.select(*columns).select_from(source).group_by(per_unit.c.arm)
        with self.engine.begin() as conn:
            if not self.is_sqlite:
                # One group per unit: give the hash aggregate room so it does not spill to disk.
                conn.execute(sa.text("SET LOCAL work_mem = '64MB'"))
            rows = conn.execute(per_arm).all()
        return {row.arm: _aggregate(row, with_pre=pre_period is not None) for row in rows}

    def reward_buckets(
        self, experiment: str, surface: str, bucket_seconds: int
    ) -> list[RewardBucket]:
        """Per arm and per `bucket_seconds` of decision time (buckets aligned on the epoch):
        n, sum and sum of squares of the learned rewards of `experiment` on `surface`, ordered
        by arm and time. One GROUP BY (arm, bucket)."""
        if self.is_sqlite:
            epoch = sa.cast(sa.func.strftime("%s", decisions.c.created_at), sa.Integer)
            index = epoch // bucket_seconds
        else:
            index = sa.func.floor(sa.extract("epoch", decisions.c.created_at) / bucket_seconds)
        bucket = index.label("bucket")
        reward = decisions.c.learned_reward
        query = (
            sa.select(
                decisions.c.arm,
                bucket,
                sa.func.count().label("n"),
                sa.func.sum(reward).label("total"),
                sa.func.sum(reward * reward).label("squares"),
            )
            .where(
                decisions.c.experiment == experiment,
                decisions.c.surface == surface,
                reward.is_not(None),
            )
            .group_by(decisions.c.arm, bucket)
            .order_by(decisions.c.arm, bucket)
        )
        with self.autocommit.connect() as conn:
            rows = conn.execute(query).all()
        return [
            RewardBucket(
                arm=row.arm,
                start=datetime.fromtimestamp(int(row.bucket) * bucket_seconds, tz=UTC),
                n=int(row.n),
                total=float(row.total),
                squares=float(row.squares),
            )
            for row in rows
        ]


def _pre_period(experiment: str, surface: str, start: datetime, end: datetime) -> sa.Subquery:
    """Each principal's mean learned reward on `surface` in [start, end)."""
    return (
        sa.select(
            decisions.c.principal.label("unit"),
            sa.func.avg(decisions.c.learned_reward).label("x"),
        )
        .where(
            decisions.c.surface == surface,
            decisions.c.created_at >= start,
            decisions.c.created_at < end,
            decisions.c.learned_reward.is_not(None),
            # The experiment's own decisions are never pre-period, even under clock skew.
            sa.or_(decisions.c.experiment.is_(None), decisions.c.experiment != experiment),
        )
        .group_by(decisions.c.principal)
        .subquery()
    )


def _aggregate(row: sa.Row[Any], *, with_pre: bool) -> ArmAggregate:
    return ArmAggregate(
        arm=row.arm,
        units=int(row.units),
        decisions=int(row.decisions),
        reward_sum=float(row.reward_sum),
        reward_sq=float(row.reward_sq),
        reaction_sum=float(row.counted_sum),
        reaction_sq=float(row.counted_sq),
        n_sq=float(row.n_sq),
        pre_period=PrePeriodSums(
            units=int(row.pre_units),
            sum_x=float(row.pre_sum or 0.0),
            sum_xx=float(row.pre_sq or 0.0),
            sum_xy=float(row.pre_cross or 0.0),
            sum_y=float(row.pre_reward_sum or 0.0),
        )
        if with_pre
        else None,
    )
