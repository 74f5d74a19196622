"""Reads on the request path: a logged decision by event id, and what a person was recently
shown (the context builder's recency features)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from bandit.store.database import Database
from bandit.store.records import LoggedDecision
from bandit.store.rows import _LOGGED, _logged, decisions

_RECENT_SQL = (
    "SELECT chosen_action, max(created_at) FROM decisions WHERE principal = %s "
    "AND surface = %s AND created_at >= %s GROUP BY chosen_action"
)


class Lookups(Database):
    """Point reads of the decision log."""

    def get(self, event_id: str) -> LoggedDecision | None:
        with self.autocommit.connect() as conn:
            row = conn.execute(_LOGGED.where(decisions.c.event_id == event_id)).first()
        return None if row is None else _logged(row)

    def get_many(self, event_ids: Sequence[str]) -> list[LoggedDecision]:
        if not event_ids:
            return []
        with self.autocommit.connect() as conn:
            rows = conn.execute(_LOGGED.where(decisions.c.event_id.in_(list(event_ids))))
            return [_logged(r) for r in rows]

    def recent_choices(self, principal: str, surface: str, since: datetime) -> dict[str, datetime]:
        """Action id -> last time it was chosen for `principal` since `since`."""
        query = (
            sa.select(decisions.c.chosen_action, sa.func.max(decisions.c.created_at))
            .where(
                decisions.c.principal == principal,
                decisions.c.surface == surface,
                decisions.c.created_at >= since,
            )
            .group_by(decisions.c.chosen_action)
        )
        with self.autocommit.connect() as conn:
            rows = conn.execute(query).all()
        tz = since.tzinfo
        return {r[0]: (r[1] if r[1].tzinfo else r[1].replace(tzinfo=tz)) for r in rows}

    def queue_recent_choices(
        self, conn: Any, principal: str, surface: str, since: datetime
    ) -> Callable[[], dict[str, datetime]]:
        """Send `recent_choices` on `conn`, a PostgreSQL connection from `raw()`; the returned
        function reads the answer. In a psycopg pipeline the query shares the caller's round
        trip: call the function after the pipeline block."""
        cursor = conn.execute(_RECENT_SQL, (principal, surface, since))
        return lambda: dict(cursor.fetchall())
