"""Reads on the request path: a logged decision by event id, what a person was recently shown
(the context builder's recency features) and their own history of decisions and reactions (the
tips surface's personal-history features)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cached_property

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bandit.store.database import Database, SqliteRead, pg_connection, sqlite_connection
from bandit.store.records import LoggedDecision, PastChoice
from bandit.store.rows import _LOGGED, _logged, _moment, decisions, rewards

RECENT_CHOICES_PG = (
    "SELECT chosen_action, max(created_at) AS at FROM decisions WHERE principal = %(principal)s "
    "AND surface = %(surface)s AND created_at >= %(recent_since)s GROUP BY chosen_action"
)
"""A person's recent choices (`recent_choices`) in PostgreSQL's words, with named parameters
`principal`, `surface` and `recent_since`: a subquery for a statement that reads them along
with other reads in one round trip (`integrations.profiles.People.moment`). Served by
`ix_decisions_principal_surface_created`."""

RECENT_CHOICES_SQLITE = (
    "SELECT chosen_action, max(created_at) AS at FROM decisions WHERE principal = :principal "
    "AND surface = :surface AND created_at >= :recent_since GROUP BY chosen_action"
)
"""`RECENT_CHOICES_PG` in SQLite's words: named parameters for `sqlite3`, `recent_since` bound
as `UTCDateTime` writes it on SQLite, and `at` the naive UTC text of the newest choice."""

_OWNER_SQL = "SELECT principal, surface FROM decisions WHERE event_id = %s"

# Built once, like the texts above: building the statement cost SQLAlchemy more than SQLite
# took to run it.
_RECENT = (
    sa.select(decisions.c.chosen_action, sa.func.max(decisions.c.created_at))
    .where(
        decisions.c.principal == sa.bindparam("principal"),
        decisions.c.surface == sa.bindparam("surface"),
        decisions.c.created_at >= sa.bindparam("since"),
    )
    .group_by(decisions.c.chosen_action)
)


class Lookups(Database):
    """Point reads of the decision log."""

    def get(self, event_id: str) -> LoggedDecision | None:
        if self.is_sqlite:
            # Every reward, activation and feedback reads its decision first: on SQLite the
            # statement is compiled once and runs on the sqlite3 connection (~390 -> ~140 µs).
            with sqlite_connection(self.engine) as connection:
                rows = self._logged_read.rows(connection, event_id=event_id)
            return _logged(rows[0]) if rows else None
        with self.autocommit.connect() as conn:
            row = conn.execute(_LOGGED.where(decisions.c.event_id == event_id)).first()
        return None if row is None else _logged(row)

    def owner(self, event_id: str) -> tuple[str, str] | None:
        """(principal, surface) of the decision `event_id`, or None when none is logged: what
        an activation checks before it acts, without reading the whole decision (a tips
        decision's row is ~15 KB of JSON and VW text). A reward checks its owner in the
        statement that records it (`record_reward(owner=...)`)."""
        if self.is_sqlite:
            with sqlite_connection(self.engine) as connection:
                rows = self._owner_read.rows(connection, event_id=event_id)
        else:
            with pg_connection(self.engine) as connection:
                rows = connection.execute(_OWNER_SQL, (event_id,)).fetchall()
        return (rows[0][0], rows[0][1]) if rows else None

    @cached_property
    def _owner_read(self) -> SqliteRead:
        return SqliteRead(
            sa.select(decisions.c.principal, decisions.c.surface).where(
                decisions.c.event_id == sa.bindparam("event_id")
            ),
            self.engine.dialect,
        )

    @cached_property
    def _logged_read(self) -> SqliteRead:
        return SqliteRead(
            _LOGGED.where(decisions.c.event_id == sa.bindparam("event_id")), self.engine.dialect
        )

    def get_many(self, event_ids: Sequence[str]) -> list[LoggedDecision]:
        if not event_ids:
            return []
        with self.autocommit.connect() as conn:
            rows = conn.execute(_LOGGED.where(decisions.c.event_id.in_(list(event_ids))))
            return [_logged(r) for r in rows]

    def recent_choices(self, principal: str, surface: str, since: datetime) -> dict[str, datetime]:
        """Action id -> last time it was chosen for `principal` since `since`."""
        with self.autocommit.connect() as conn:
            return self.recent_choices_on(conn, principal, surface, since)

    @staticmethod
    def recent_choices_on(
        conn: Connection, principal: str, surface: str, since: datetime
    ) -> dict[str, datetime]:
        """`recent_choices` on the caller's connection (reads that share one checkout)."""
        rows = conn.execute(_RECENT, {"principal": principal, "surface": surface, "since": since})
        return {r[0]: _moment(r[1]) for r in rows}  # SQLite's max() loses the column type

    def person_history(
        self, principal: str, surface: str, since: datetime, limit: int
    ) -> list[PastChoice]:
        """The newest `limit` decisions about `principal` on `surface` created since `since`,
        newest first, each with what was chosen and the person's reaction (None without one).

        One query, served by `ix_decisions_principal_surface_created`.
        """
        query = (
            sa.select(
                decisions.c.event_id,
                sa.type_coerce(decisions.c.created_at, sa.Text),
                decisions.c.chosen_action,
                rewards.c.reaction,
            )
            .select_from(decisions.outerjoin(rewards, rewards.c.event_id == decisions.c.event_id))
            .where(
                decisions.c.principal == principal,
                decisions.c.surface == surface,
                decisions.c.created_at >= since,
            )
            .order_by(decisions.c.created_at.desc(), decisions.c.event_id.desc())
            .limit(limit)
        )
        with self.autocommit.connect() as conn:
            rows = conn.execute(query).all()
        return [PastChoice(e, _moment(at), action, reaction) for e, at, action, reaction in rows]
