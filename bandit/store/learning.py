"""The learner's reads and marks: which decisions are ready to learn, the lean rows it learns
from, the learning marks it writes, and the replay of what a snapshot does not cover."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from bandit.events import utcnow
from bandit.store.database import Database
from bandit.store.records import Learnable, Learned
from bandit.store.rows import _LEARNABLE, _learnable, decisions, rewards, snapshots
from bandit.tables import AWAITING_INDEX


class Learning(Database):
    """The join of decisions and rewards, from the learner's side."""

    def learnables(self, event_ids: Sequence[str]) -> list[Learnable]:
        if not event_ids:
            return []
        wanted: sa.ColumnElement[bool]
        if self.is_sqlite:
            wanted = decisions.c.event_id.in_(list(event_ids))
        else:
            # One array parameter, not one placeholder per id: a batch is thousands of ids.
            wanted = decisions.c.event_id == sa.any_(
                sa.bindparam("ids", list(event_ids), type_=postgresql.ARRAY(sa.Text))
            )
        with self.autocommit.connect() as conn:
            return [_learnable(r) for r in conn.execute(_LEARNABLE.where(wanted))]

    def max_learn_seq(self) -> int:
        """The highest learning mark ever issued. Snapshots count too: their decisions may
        have been deleted since (DELETE /logs), and a mark must never be issued twice."""
        with self.autocommit.connect() as conn:
            value = conn.execute(sa.select(sa.func.max(decisions.c.learn_seq))).scalar()
            covered = conn.execute(sa.select(sa.func.max(snapshots.c.through_seq))).scalar()
        return max(int(value or 0), int(covered or 0))

    def rewarded_unlearned(
        self, since: datetime, limit: int, *, exclude: Sequence[str] = ()
    ) -> list[str]:
        """Event ids with an on-time reward, activated, not yet learned (missed notifications);
        decisions on the `exclude` surfaces are left out."""
        filters = [
            rewards.c.received_at >= since,
            rewards.c.late.is_(False),
            decisions.c.learn_seq.is_(None),
            decisions.c.activated_at.is_not(None),
        ]
        if exclude:
            filters.append(decisions.c.surface.not_in(list(exclude)))
        query = (
            sa.select(rewards.c.event_id)
            .select_from(rewards.join(decisions, rewards.c.event_id == decisions.c.event_id))
            .where(*filters)
            .order_by(rewards.c.received_at)
            .limit(limit)
        )
        with self.autocommit.connect() as conn:
            return [r[0] for r in conn.execute(query)]

    def expired_unrewarded(
        self,
        before: datetime,
        limit: int,
        *,
        surfaces: Sequence[str] = (),
        exclude: Sequence[str] = (),
    ) -> list[str]:
        """Activated, unlearned decisions whose reward window closed before `before`, on
        `surfaces` (all when empty) except `exclude`.

        Read through the awaiting index (activated_at of the unlearned decisions), so a sweep
        visits only the decisions whose window has closed, however many are still waiting.
        PostgreSQL's planner takes that index by itself; SQLite's, without statistics, took the
        surface's index or `learn_seq`'s and walked every waiting decision (about 85 ms a query
        at 94,000 waiting, every second), so on SQLite the index is named (`INDEXED BY`).
        """
        filters = [
            decisions.c.learn_seq.is_(None),
            decisions.c.activated_at.is_not(None),
            decisions.c.activated_at < before,
        ]
        if surfaces:
            filters.append(decisions.c.surface.in_(list(surfaces)))
        if exclude:
            filters.append(decisions.c.surface.not_in(list(exclude)))
        query = (
            sa.select(decisions.c.event_id)
            .where(*filters)
            .order_by(decisions.c.activated_at)
            .limit(limit)
            .with_hint(decisions, f"INDEXED BY {AWAITING_INDEX}", "sqlite")
        )
        with self.autocommit.connect() as conn:
            return [r[0] for r in conn.execute(query)]

    def mark_learned(self, marks: Sequence[Learned], at: datetime | None = None) -> None:
        """Record learning marks; a decision already marked keeps its first mark."""
        if not marks:
            return
        now = at or utcnow()
        if not self.is_sqlite:
            # One statement for the whole batch: unnest the marks into a join.
            with self._write() as conn:
                conn.execute(
                    sa.text(
                        "UPDATE decisions AS d SET learn_seq = m.seq, learned_reward = m.reward, "
                        "learned_at = :now FROM unnest(CAST(:ids AS text[]), "
                        "CAST(:seqs AS bigint[]), CAST(:rewards AS float8[])) "
                        "AS m(id, seq, reward) WHERE d.event_id = m.id AND d.learn_seq IS NULL"
                    ),
                    {
                        "ids": [m.event_id for m in marks],
                        "seqs": [m.seq for m in marks],
                        "rewards": [m.reward for m in marks],
                        "now": now,
                    },
                )
            return
        statement = (
            decisions.update()
            .where(
                decisions.c.event_id == sa.bindparam("b_event_id"),
                decisions.c.learn_seq.is_(None),
            )
            .values(
                learn_seq=sa.bindparam("b_seq"),
                learned_reward=sa.bindparam("b_reward"),
                learned_at=now,
            )
        )
        with self._write() as conn:
            conn.execute(
                statement,
                [{"b_event_id": m.event_id, "b_seq": m.seq, "b_reward": m.reward} for m in marks],
            )

    def learned_after(self, model_key: str, seq: int, batch: int = 2000) -> Iterator[Learnable]:
        """Decisions of `model_key` learned after mark `seq`, in learning order (for replay)."""
        last = seq
        while True:
            query = (
                _LEARNABLE.where(decisions.c.model_key == model_key, decisions.c.learn_seq > last)
                .order_by(decisions.c.learn_seq)
                .limit(batch)
            )
            with self.autocommit.connect() as conn:
                rows = [_learnable(r) for r in conn.execute(query)]
            if not rows:
                return
            yield from rows
            last = rows[-1].learn_seq or last
