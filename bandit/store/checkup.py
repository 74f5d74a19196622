"""The "is it learning?" reads: what a window of a surface's log adds up to, which models logged
it and when they last changed, and a bounded sample of its decisions.

The aggregates are exact over the whole window (the database sums them); the sample is bounded
whatever the window's size, so an analyst may point the checkup at millions of decisions.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bandit.store.records import LoggedSample, ModelUse, WindowCounts
from bandit.store.rows import _moment, _pmf, _range_filters, decisions, rewards, snapshots
from bandit.store.streams import Streams

SAMPLE_SLICES = 50
"""A window larger than the sample is read as the first decisions of this many equal slices."""


def _count(condition: Any) -> Any:
    return sa.func.sum(sa.case((condition, 1), else_=0))


class Checkup(Streams):
    """Reads for `rewards.doctor`."""

    def window_counts(self, surface: str, start: datetime, end: datetime) -> WindowCounts:
        """Decisions of `surface` created in [start, end) and what became of them, in one query."""
        activated = decisions.c.activated_at.is_not(None)
        on_time = sa.and_(rewards.c.event_id.is_not(None), rewards.c.late.is_(False))
        received = sa.case((on_time, rewards.c.received_at), else_=None)
        query = (
            sa.select(
                sa.func.count(),
                _count(activated),
                _count(sa.and_(activated, on_time)),
                _count(sa.and_(activated, rewards.c.late.is_(True))),
                _count(sa.and_(activated, decisions.c.learn_seq.is_not(None), sa.not_(on_time))),
                sa.func.min(decisions.c.propensity),
                sa.func.min(received),
                sa.func.max(received),
                sa.func.min(decisions.c.created_at),
                sa.func.max(decisions.c.created_at),
            )
            .select_from(decisions.outerjoin(rewards, rewards.c.event_id == decisions.c.event_id))
            .where(*_range_filters(start, end, surface))
        )
        with self.autocommit.connect() as conn:
            row = conn.execute(query).one()
        return WindowCounts(
            decisions=int(row[0]),
            activated=int(row[1] or 0),
            rewarded=int(row[2] or 0),
            late=int(row[3] or 0),
            defaulted=int(row[4] or 0),
            min_propensity=None if row[5] is None else float(row[5]),
            first_reward_at=None if row[6] is None else _moment(row[6]),
            last_reward_at=None if row[7] is None else _moment(row[7]),
            first_decision_at=None if row[8] is None else _moment(row[8]),
            last_decision_at=None if row[9] is None else _moment(row[9]),
        )

    def window_models(
        self, surface: str, start: datetime, end: datetime, *, limit: int = 20
    ) -> list[ModelUse]:
        """The models that logged the window's decisions, most decisions first, each with its
        newest snapshot (its last change: a snapshot is saved when the model's version moves)
        and when the on-time rewards of its decisions arrived."""
        on_time = sa.and_(rewards.c.event_id.is_not(None), rewards.c.late.is_(False))
        received = sa.case((on_time, rewards.c.received_at), else_=None)
        query = (
            sa.select(
                decisions.c.model_key,
                decisions.c.policy,
                sa.func.count(),
                sa.func.min(decisions.c.model_version),
                sa.func.max(decisions.c.model_version),
                sa.func.min(received),
                sa.func.max(received),
            )
            .select_from(decisions.outerjoin(rewards, rewards.c.event_id == decisions.c.event_id))
            .where(*_range_filters(start, end, surface))
            .group_by(decisions.c.model_key, decisions.c.policy)
            .order_by(sa.func.count().desc(), decisions.c.model_key)
            .limit(limit)
        )
        with self.autocommit.connect() as conn:
            used = conn.execute(query).all()
            keys = sorted({row[0] for row in used})
            newest = {}
            if keys:
                latest = conn.execute(
                    sa.select(
                        snapshots.c.model_key,
                        sa.func.max(snapshots.c.version),
                        sa.func.max(snapshots.c.created_at),
                    )
                    .where(snapshots.c.model_key.in_(keys))
                    .group_by(snapshots.c.model_key)
                ).all()
                newest = {row[0]: (int(row[1]), _moment(row[2])) for row in latest}
        return [
            ModelUse(
                model_key=key,
                policy=policy,
                decisions=int(count),
                min_version=int(low),
                max_version=int(high),
                snapshot_version=newest[key][0] if key in newest else None,
                snapshot_at=newest[key][1] if key in newest else None,
                first_reward_at=None if first is None else _moment(first),
                last_reward_at=None if last is None else _moment(last),
            )
            for key, policy, count, low, high, first, last in used
        ]

    def sample_window(
        self,
        surface: str,
        start: datetime,
        end: datetime,
        *,
        limit: int,
        total: int,
        batch: int = 1000,
    ) -> Iterator[list[LoggedSample]]:
        """At most `limit` decisions of the window, oldest first, in lists of `batch`.

        `total` is the window's decision count (`window_counts`). When it is within `limit`,
        every decision is read in one streamed query. Otherwise [start, end) is cut into
        `SAMPLE_SLICES` equal slices of time and the first `limit / SAMPLE_SLICES` decisions
        of each are read (each an index range scan), so the work is bounded by `limit`
        whatever the window holds: a systematic sample spread over the window. Pass the
        window's first and last decision times (`window_counts`) to spread the slices over
        the time that has decisions.
        """
        columns = (
            decisions.c.event_id,
            sa.type_coerce(decisions.c.created_at, sa.Text),
            sa.cast(decisions.c.pmf, sa.Text),
            decisions.c.chosen_index,
            decisions.c.learned_reward,
            decisions.c.vw_example,
        )
        order = (decisions.c.created_at, decisions.c.event_id)
        pmfs: dict[str, tuple[float, ...]] = {}

        def rows(raw: Sequence[Any]) -> list[LoggedSample]:
            if len(pmfs) > 1024:
                pmfs.clear()
            return [
                LoggedSample(
                    event_id,
                    _moment(created),
                    pmfs.get(pmf) or _pmf(pmfs, pmf),
                    int(chosen),
                    reward,
                    tuple(example.split("\n")) if example else (),
                )
                for event_id, created, pmf, chosen, reward, example in raw
            ]

        if total <= limit:
            query = sa.select(*columns).where(*_range_filters(start, end, surface)).order_by(*order)
            for raw in self._stream(query, batch):
                yield rows(raw)
            return
        per_slice = math.ceil(limit / SAMPLE_SLICES)
        step = (end - start) / SAMPLE_SLICES
        left = limit
        for i in range(SAMPLE_SLICES):
            if left <= 0:
                return
            since = start + step * i
            until = end if i == SAMPLE_SLICES - 1 else start + step * (i + 1)
            query = (
                sa.select(*columns)
                .where(*_range_filters(since, until, surface))
                .order_by(*order)
                .limit(min(per_slice, left))
            )
            with self.autocommit.connect() as conn:
                raw = conn.execute(query).all()
            left -= len(raw)
            if raw:
                yield rows(raw)
