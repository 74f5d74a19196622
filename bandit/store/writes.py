"""The write path: log a decision, activate it, record its reward.

Every api worker runs these per request, so each is the fewest statements it can be: one
INSERT for a decision (straight through psycopg on PostgreSQL), one transaction for a reward.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache

import sqlalchemy as sa
from psycopg.types.json import Json
from sqlalchemy.exc import IntegrityError

from bandit.events import Decision, utcnow
from bandit.store.database import Database
from bandit.store.records import RewardOutcome
from bandit.store.rows import _JSON_COLUMNS, _row, decisions, rewards


@lru_cache(maxsize=4)
def _insert_sql(columns: tuple[str, ...]) -> str:
    placeholders = ", ".join(["%s"] * len(columns))
    return (
        f"INSERT INTO decisions ({', '.join(columns)}) VALUES ({placeholders}) "
        "ON CONFLICT (event_id) DO NOTHING"
    )


class Writes(Database):
    """Decisions, their activation and their rewards, as the api logs them."""

    def insert_decision(self, decision: Decision) -> bool:
        """Log `decision` durably; False when its event id was already logged."""
        if not self.is_sqlite:
            row = _row(decision)
            values = [Json(v) if k in _JSON_COLUMNS else v for k, v in row.items()]
            with self.raw() as conn:
                cursor = conn.execute(_insert_sql(tuple(row)), values)
                return bool(cursor.rowcount)
        try:
            with self._write(single=True) as conn:
                conn.execute(decisions.insert(), _row(decision))
        except IntegrityError:
            return False
        return True

    def activate(self, event_id: str, at: datetime | None = None) -> bool:
        """Mark a deferred decision activated (first activation wins); False if unknown."""
        with self._write() as conn:
            result = conn.execute(
                decisions.update()
                .where(decisions.c.event_id == event_id, decisions.c.activated_at.is_(None))
                .values(activated_at=at or utcnow())
            )
            if result.rowcount:
                return True
            exists = conn.execute(
                sa.select(decisions.c.event_id).where(decisions.c.event_id == event_id)
            ).first()
            return exists is not None

    # rewards ----------------------------------------------------------------------------

    def record_reward(
        self,
        event_id: str,
        value: float,
        *,
        reaction: str | None,
        window: timedelta,
        at: datetime | None = None,
        aggregation: str = "earliest",
    ) -> RewardOutcome | None:
        """Record the first reward of a decision ("earliest" aggregation).

        Returns None for an unknown event id. A reward that arrives after the reward window
        of an activated decision is recorded as late: kept for the record, never learned.
        A second reward for the same event id changes nothing and returns the first, unless
        `aggregation` is "sum": then a second on-time reward of a decision not yet learned is
        added to the first (the outcome's `value` is the sum, `created` stays False).
        """
        now = at or utcnow()
        with self._write() as conn:
            decision = conn.execute(
                sa.select(decisions.c.activated_at, decisions.c.learn_seq).where(
                    decisions.c.event_id == event_id
                )
            ).first()
            if decision is None:
                return None
            existing = conn.execute(
                sa.select(rewards.c.value, rewards.c.reaction, rewards.c.late).where(
                    rewards.c.event_id == event_id
                )
            ).first()
            activated_at = decision.activated_at  # aware UTC: the column type converts it
            late = decision.learn_seq is not None or (
                activated_at is not None and now > activated_at + window
            )
            if existing is not None:
                if aggregation == "sum" and not late and not existing.late:
                    conn.execute(
                        rewards.update()
                        .where(rewards.c.event_id == event_id)
                        .values(value=rewards.c.value + value)
                    )
                    return RewardOutcome(False, existing.value + value, existing.reaction, False)
                return RewardOutcome(False, existing.value, existing.reaction, existing.late)
            try:
                with conn.begin_nested():
                    conn.execute(
                        rewards.insert(),
                        {
                            "event_id": event_id,
                            "value": value,
                            "reaction": reaction,
                            "received_at": now,
                            "late": late,
                        },
                    )
            except IntegrityError:
                # A concurrent writer recorded the first reward between our read and insert.
                first = conn.execute(
                    sa.select(rewards.c.value, rewards.c.reaction, rewards.c.late).where(
                        rewards.c.event_id == event_id
                    )
                ).one()
                return RewardOutcome(False, first.value, first.reaction, first.late)
            return RewardOutcome(True, value, reaction, late)
