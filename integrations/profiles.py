"""Profiles and signals: reading and writing what the context builder needs."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from bandit.events import utcnow
from bandit.store import (
    RECENT_CHOICES_PG,
    RECENT_CHOICES_SQLITE,
    PgQuery,
    Store,
    sqlite_connection,
)
from bandit.tables import UTCDateTime, utc_from_sqlite
from integrations.signals import CONTEXT_LIMIT, SignalStore, newest, trusted
from integrations.signals import Signal as Signal  # re-exported: the context builder reads it
from integrations.tables import ProfileRow
from integrations.vault_tables import IntegrationTokenRow

profiles = ProfileRow.__table__  # type: ignore[attr-defined]
integration_tokens = IntegrationTokenRow.__table__  # type: ignore[attr-defined]

ALL_KINDS = ("advice", "todo")

# The decision path's four reads of a person on PostgreSQL, in one statement: one round trip
# and one result row, which costs the api half the CPU that the same four statements pipelined
# did (~63 against ~130 µs a moment, alone; twice that among 16 requests' threads). Each read is
# a subquery aggregated into arrays, so a person with no profile, signal, choice or integration
# still gets one row. Signals are numbered newest first, and each array keeps that order.
_MOMENT_SQL = f"""
SELECT p.timezone, p.quiet_start, p.quiet_end, p.interests, p.kinds,
    s.types, s.values, s.occurred, s.sources, r.actions, r.ats, c.providers, c.statuses
FROM (SELECT 1) AS one
LEFT JOIN profiles AS p ON p.principal = %(principal)s
CROSS JOIN (
    SELECT array_agg(type ORDER BY n) AS types, array_agg(value ORDER BY n) AS values,
        array_agg(occurred_at ORDER BY n) AS occurred, array_agg(source ORDER BY n) AS sources
    FROM (
        SELECT type, value, occurred_at, source,
            row_number() OVER (ORDER BY occurred_at DESC, id DESC) AS n
        FROM signals WHERE principal = %(principal)s AND occurred_at >= %(signals_since)s
        ORDER BY occurred_at DESC, id DESC LIMIT {CONTEXT_LIMIT}
    ) AS latest
) AS s
CROSS JOIN (
    SELECT array_agg(chosen_action) AS actions, array_agg(at) AS ats
    FROM ({RECENT_CHOICES_PG}) AS recent
) AS r
CROSS JOIN (
    SELECT array_agg(provider) AS providers, array_agg(status) AS statuses
    FROM integration_tokens WHERE principal = %(principal)s
) AS c
"""
# (Only constants are formatted into it; every value is a bound parameter.)

# The same reads on SQLite, in one statement on a kept sqlite3 connection: each read's rows,
# tagged by the read, one after another. Against the four statements each compiled once
# (`SqliteRead`) it costs the event loop two thirds (a person with 30 recent choices and 4
# fresh signals: ~114 -> ~81 µs), most of it saved by decoding the rows in one loop rather
# than column by column into named rows. The signals' subquery takes the newest ones; the
# decoding keeps the newest of each type, ties to the later stored (by id), as on PostgreSQL,
# without relying on the order rows of a compound come in.
_MOMENT_SQLITE = f"""
SELECT 'profile', timezone, quiet_start, quiet_end, interests, kinds
FROM profiles WHERE principal = :principal
UNION ALL SELECT * FROM (
    SELECT 'signal', type, value, occurred_at, source, id FROM signals
    WHERE principal = :principal AND occurred_at >= :signals_since
    ORDER BY occurred_at DESC, id DESC LIMIT {CONTEXT_LIMIT}
)
UNION ALL SELECT 'choice', chosen_action, at, NULL, NULL, NULL FROM ({RECENT_CHOICES_SQLITE})
UNION ALL SELECT 'integration', provider, status, NULL, NULL, NULL
FROM integration_tokens WHERE principal = :principal
"""
# (Only constants are formatted into it; every value is a bound parameter.)

# One by one, for the reads off the decision path, built once: building a statement costs
# SQLAlchemy more than running it (a person's connections: ~120 µs built per call, ~30 µs
# prebuilt).
_PROFILE = sa.select(
    profiles.c.timezone,
    profiles.c.quiet_start,
    profiles.c.quiet_end,
    profiles.c.interests,
    profiles.c.kinds,
).where(profiles.c.principal == sa.bindparam("principal"))
_CONNECTIONS = sa.select(integration_tokens.c.provider, integration_tokens.c.status).where(
    integration_tokens.c.principal == sa.bindparam("principal")
)


def _profile_of(principal: str, row: Sequence[Any] | None) -> Profile:
    """A person's profile from a row of `_PROFILE` (or the first columns of `_MOMENT_SQL`); the
    defaults when they never saved one."""
    if row is None:
        return Profile(principal)
    zone, quiet_start, quiet_end, interests, kinds = row
    return Profile(principal, zone, quiet_start, quiet_end, tuple(interests), tuple(kinds))


@dataclass(frozen=True, slots=True)
class Profile:
    principal: str
    timezone: str = "UTC"
    quiet_start: str | None = None
    quiet_end: str | None = None
    interests: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ALL_KINDS

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, now: datetime) -> datetime:
        return now.astimezone(self.zone)

    def next_tip_at(self, now: datetime) -> datetime | None:
        """When quiet hours cover `now`, the moment they end (aware, local); otherwise None."""
        if not self.quiet_start or not self.quiet_end:
            return None
        local = self.local(now)
        start, end = _hhmm(self.quiet_start), _hhmm(self.quiet_end)
        t = local.timetz().replace(tzinfo=None)
        if start == end:
            return None
        inside = start <= t < end if start < end else (t >= start or t < end)
        if not inside:
            return None
        ends = local.replace(hour=end.hour, minute=end.minute, second=0, microsecond=0)
        if ends <= local:
            ends += timedelta(days=1)
        return ends


def _hhmm(text: str) -> time:
    hours, minutes = text.split(":")
    return time(int(hours), int(minutes))


PersonMoment = tuple[Profile, dict[str, Signal], dict[str, datetime], dict[str, str]]
"""What `People.moment` reads: the profile, the newest fresh signal of each type, action id ->
when it was last chosen, and integration provider -> token status."""


def _sqlite_moment(principal: str, rows: Iterable[Sequence[Any]]) -> PersonMoment:
    """`People.moment` from the rows of `_MOMENT_SQLITE`, each value converted as its column's
    type converts it on SQLite (JSON by `json.loads`, times by `utc_from_sqlite`)."""
    profile = Profile(principal)
    signals: dict[str, Signal] = {}
    recent: dict[str, datetime] = {}
    statuses: dict[str, str] = {}
    order: dict[str, tuple[datetime, int]] = {}
    for read, a, b, c, d, e in rows:
        if read == "choice":
            recent[a] = utc_from_sqlite(b)
        elif read == "signal":
            # Newest of each type, ties to the later stored, whatever order the rows come in.
            at = utc_from_sqlite(c)
            if a not in order or (at, e) > order[a]:
                signals[a], order[a] = trusted(a, b, at, d), (at, e)
        elif read == "profile":
            profile = _profile_of(principal, (a, b, c, json.loads(d), json.loads(e)))
        else:
            statuses[a] = b
    return profile, signals, recent, statuses


def _pg_moment(principal: str, rows: Sequence[Sequence[Any]]) -> PersonMoment:
    """`People.moment` from the one row of `_MOMENT_SQL`."""
    (row,) = rows
    profile_row, (types, values, occurred, sources) = row[:5], row[5:9]
    actions, ats, providers, statuses = row[9:]
    return (
        _profile_of(principal, None if profile_row[0] is None else profile_row),
        newest(zip(types, values, occurred, sources, strict=True)) if types else {},
        dict(zip(actions, ats, strict=True)) if actions else {},
        dict(zip(providers, statuses, strict=True)) if providers else {},
    )


class People:
    """Profiles and signals on the service's database."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.store = store
        self.autocommit = self.engine.execution_options(isolation_level="AUTOCOMMIT")
        self.signals = SignalStore(store.engine)
        dialect = self.engine.dialect
        self._sqlite_time = (
            UTCDateTime().dialect_impl(dialect).bind_processor(dialect)
            if dialect.name == "sqlite"
            else None
        )

    def profile(self, principal: str) -> Profile:
        with self.autocommit.connect() as conn:
            return self._profile(conn, principal)

    @staticmethod
    def _profile(conn: Connection, principal: str) -> Profile:
        return _profile_of(principal, conn.execute(_PROFILE, {"principal": principal}).first())

    def save_profile(self, profile: Profile) -> None:
        values = {
            "timezone": profile.timezone,
            "quiet_start": profile.quiet_start,
            "quiet_end": profile.quiet_end,
            "interests": list(profile.interests),
            "kinds": list(profile.kinds),
            "updated_at": utcnow(),
        }
        with self.engine.begin() as conn:
            updated = conn.execute(
                profiles.update().where(profiles.c.principal == profile.principal).values(**values)
            )
            if not updated.rowcount:
                conn.execute(profiles.insert().values(principal=profile.principal, **values))

    def forget(self, principal: str) -> int:
        """Delete the profile; the person reads the defaults afterwards."""
        with self.engine.begin() as conn:
            deleted = conn.execute(profiles.delete().where(profiles.c.principal == principal))
        return int(deleted.rowcount or 0)

    def moment(
        self, principal: str, surface: str, *, signals_since: datetime, recent_since: datetime
    ) -> PersonMoment:
        """Everything the decision path reads about a person, in one statement: the profile,
        the latest signal of each type, action id -> when it was last chosen, and integration
        provider -> token status (what `Integrations.gather` needs to know).
        """
        if self._sqlite_time is not None:
            bounds = {
                "principal": principal,
                "surface": surface,
                "signals_since": self._sqlite_time(signals_since),
                "recent_since": self._sqlite_time(recent_since),
            }
            with sqlite_connection(self.engine) as connection:
                return _sqlite_moment(principal, connection.execute(_MOMENT_SQLITE, bounds))
        query = self.moment_query(
            principal, surface, signals_since=signals_since, recent_since=recent_since
        )
        with self.store.raw() as conn:
            return query.fetch(conn)

    @staticmethod
    def moment_query(
        principal: str,
        surface: str,
        *,
        signals_since: datetime,
        recent_since: datetime,
    ) -> PgQuery[PersonMoment]:
        """`moment`'s statement on PostgreSQL and its decoding, for a sync or an async
        connection: in a psycopg pipeline it shares one round trip with others
        (`api.services.recommend_reads`)."""
        bounds = {
            "principal": principal,
            "surface": surface,
            "signals_since": signals_since,
            "recent_since": recent_since,
        }
        return PgQuery(_MOMENT_SQL, bounds, lambda rows: _pg_moment(principal, rows))

    def connections(self, principal: str) -> dict[str, str]:
        """Integration provider -> token status (`connected`, `needs_reconnect`)."""
        with self.autocommit.connect() as conn:
            return self._connections(conn, principal)

    @staticmethod
    def _connections(conn: Connection, principal: str) -> dict[str, str]:
        rows = conn.execute(_CONNECTIONS, {"principal": principal})
        return {row.provider: row.status for row in rows}

    def latest_signals(self, principal: str, since: datetime) -> dict[str, Signal]:
        """The newest signal of each type that occurred after `since`."""
        return self.signals.latest(principal, since)
