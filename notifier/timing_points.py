"""The timing surface's own rows: people's settings and their decision points.

A decision point is claimed by inserting its row, keyed by person and slot, before anything is
decided: of two notifiers that reach the same slot, the second's insert fails and it moves on,
so a slot is decided once across replicas. The claim is a lease: a notifier that dies (or fails)
after claiming leaves the row undecided (`action` None), and once its claim (`decided_at`) is
`POINT_LEASE` old the point is taken over by whichever notifier reaches it next while its
slot is still the current one (a pass only ever claims the slot `now` falls in). Deciding it
again is safe: the timing decision's event id is the slot's (`point_event_id`), so the decision
log answers a second decide with the logged decision, the tip's event id derives from it, the
push cost is charged once and the outbox records one push per tip (`notifier.timing`).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from bandit.events import utcnow
from bandit.store import PgQuery, SqliteRead, pg_connection, sqlite_connection
from notifier.schedule import Slot, TimingSettings
from notifier.tables import PushSubscriptionRow, TimingPersonRow, TimingPointRow

people = TimingPersonRow.__table__  # type: ignore[attr-defined]
points = TimingPointRow.__table__  # type: ignore[attr-defined]
devices = PushSubscriptionRow.__table__  # type: ignore[attr-defined]

SEND = "send"
WAIT = "wait"


def _open_waits() -> sa.ColumnElement[bool]:
    """A person's waits still in their window and not yet rewarded by a visit (bound by
    `person`, `since` and `now`)."""
    return sa.and_(
        points.c.principal == sa.bindparam("person"),
        points.c.action == WAIT,
        points.c.decided_at >= sa.bindparam("since"),
        points.c.decided_at <= sa.bindparam("now"),
        points.c.visited_at.is_(None),
    )


_OPEN_WAITS = sa.select(points.c.event_id).where(_open_waits())
"""Built once: every recommend asks it."""

_OPEN_WAITS_SQL = (
    "SELECT event_id FROM timing_points WHERE principal = %(person)s AND action = %(action)s "
    "AND decided_at >= %(since)s AND decided_at <= %(now)s AND visited_at IS NULL"
)
"""`_OPEN_WAITS` for psycopg: through SQLAlchemy the read cost about 160 µs of CPU, more than
twice psycopg's own (about 70 µs)."""

POINT_LEASE = timedelta(minutes=2)
"""How long a claimed point stays its notifier's while undecided. Longer than deciding takes
(the live sources answer within their deadline of seconds), far shorter than the shortest slot
(15 minutes), so a point whose notifier died is still decided within its slot."""


def point_event_id(person: str, slot_at: datetime) -> str:
    """The timing decision's event id: the same for the same person and slot everywhere."""
    digest = hashlib.blake2b(f"{person}\n{slot_at.isoformat()}".encode(), digest_size=16)
    return f"timing-{digest.hexdigest()}"


class TimingPoints:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._open_waits_sqlite = (
            SqliteRead(_OPEN_WAITS, engine.dialect) if engine.dialect.name == "sqlite" else None
        )

    # ------------------------------------------------------------------------------ settings

    def settings(self, person: str) -> TimingSettings:
        with self.autocommit.connect() as conn:
            row = conn.execute(sa.select(people).where(people.c.principal == person)).first()
        if row is None:
            return TimingSettings()
        return TimingSettings(row.every_minutes, row.pushes_per_day)

    def save(self, person: str, settings: TimingSettings) -> None:
        values = {
            "every_minutes": settings.every_minutes,
            "pushes_per_day": settings.pushes_per_day,
            "updated_at": utcnow(),
        }
        with self.engine.begin() as conn:
            updated = conn.execute(
                people.update().where(people.c.principal == person).values(**values)
            ).rowcount
            if not updated:
                conn.execute(people.insert().values(principal=person, **values))

    def reachable(self) -> list[tuple[str, TimingSettings]]:
        """Everyone with a device that gets pushes, and a dose above 0, with their settings."""
        defaults = TimingSettings()
        query = (
            sa.select(devices.c.principal, people.c.every_minutes, people.c.pushes_per_day)
            .select_from(devices.outerjoin(people, people.c.principal == devices.c.principal))
            .distinct()
            .order_by(devices.c.principal)
        )
        with self.autocommit.connect() as conn:
            rows = list(conn.execute(query))
        out = []
        for principal, every, dose in rows:
            settings = defaults if every is None else TimingSettings(every, dose)
            if settings.pushes_per_day > 0:
                out.append((principal, settings))
        return out

    # ------------------------------------------------------------------------------ points

    def claim(self, person: str, slot: Slot, event_id: str, now: datetime) -> bool:
        """Take this decision point: unclaimed, or claimed `POINT_LEASE` or more before `now`
        and still undecided. False when it is decided, or another notifier's claim is within
        its lease (`held_until` says until when)."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    points.insert().values(
                        principal=person,
                        slot_at=slot.at,
                        local_day=slot.local_day,
                        event_id=event_id,
                        decided_at=now,
                    )
                )
        except sa.exc.IntegrityError:
            pass
        else:
            return True
        # One conditional update takes the lapsed claim over: of two notifiers taking over at
        # once, the second finds `decided_at` moved to the first's `now` and takes nothing
        # (PostgreSQL re-checks the condition on the row the first committed; SQLite writes
        # one at a time).
        with self.autocommit.connect() as conn:
            taken = conn.execute(
                points.update()
                .where(
                    *_point(person, slot),
                    points.c.action.is_(None),
                    points.c.decided_at <= now - POINT_LEASE,
                )
                .values(decided_at=now)
            ).rowcount
        return bool(taken)

    def held_until(self, person: str, slot: Slot) -> datetime | None:
        """When the claim on this point lapses and it may be taken over (None: it is decided)."""
        query = sa.select(points.c.action, points.c.decided_at).where(*_point(person, slot))
        with self.autocommit.connect() as conn:
            row = conn.execute(query).first()
        if row is None or row.action is not None:
            return None
        held: datetime = row.decided_at + POINT_LEASE
        return held

    def decided(self, person: str, slot: Slot, action: str, tip_event_id: str | None) -> None:
        with self.autocommit.connect() as conn:
            conn.execute(
                points.update()
                .where(*_point(person, slot))
                .values(action=action, tip_event_id=tip_event_id)
            )

    def pushed(self, person: str, local_day: str) -> tuple[int, datetime | None]:
        """Tips pushed to `person` on their `local_day`, and when the last push ever was."""
        # A send with no tip pushed nothing (its tip could no longer be shown when a notifier
        # took the point over): it spends none of the dose.
        sends = sa.and_(
            points.c.principal == person,
            points.c.action == SEND,
            points.c.tip_event_id.is_not(None),
        )
        with self.autocommit.connect() as conn:
            today = conn.execute(
                sa.select(sa.func.count()).where(sends, points.c.local_day == local_day)
            ).scalar_one()
            last = conn.execute(sa.select(sa.func.max(points.c.decided_at)).where(sends)).scalar()
        if last is not None and last.tzinfo is None:  # SQLite hands back naive UTC
            last = last.replace(tzinfo=utcnow().tzinfo)
        return int(today), last

    def pushed_tips(self, person: str, since: datetime) -> set[str]:
        """The tips decisions pushed to `person` since `since` (the others were visits)."""
        query = sa.select(points.c.tip_event_id).where(
            points.c.principal == person,
            points.c.decided_at >= since,
            points.c.tip_event_id.is_not(None),
        )
        with self.autocommit.connect() as conn:
            return {row.tip_event_id for row in conn.execute(query)}

    def visited(self, person: str, now: datetime, window: timedelta) -> list[str]:
        """The person came on their own: the waits still in their window that it rewards
        (each once)."""
        bounds = _wait_bounds(person, now, window)
        # Most visits find nothing: a plain read first, no transaction.
        found = self._open_waits(bounds)
        if not found:
            return []
        with self.autocommit.connect() as conn:
            # One statement marks them; RETURNING gives exactly the waits this visit marked,
            # so a concurrent visit never rewards the same wait twice.
            marked = conn.execute(
                points.update()
                .where(_open_waits(), points.c.event_id.in_(found))
                .values(visited_at=now)
                .returning(points.c.event_id),
                bounds,
            )
            return [row.event_id for row in marked]

    def open_waits(self, person: str, now: datetime, window: timedelta) -> list[str]:
        """The event ids of the person's waits still in their window at `now`, not yet
        rewarded by a visit: what `visited` would reward (a read, no transaction)."""
        return self._open_waits(_wait_bounds(person, now, window))

    def _open_waits(self, bounds: dict[str, Any]) -> list[str]:
        """The event ids of `_OPEN_WAITS`; on SQLite compiled once, on its sqlite3 connection."""
        if self._open_waits_sqlite is not None:
            with sqlite_connection(self.engine) as connection:
                return [row[0] for row in self._open_waits_sqlite.rows(connection, **bounds)]
        with pg_connection(self.engine) as connection:
            return _open_waits_query(bounds).fetch(connection)

    def open_waits_query(self, person: str, now: datetime, window: timedelta) -> PgQuery[list[str]]:
        """`open_waits`'s read on PostgreSQL and its decoding, for a sync or an async
        connection: in a psycopg pipeline it shares one round trip with others."""
        return _open_waits_query(_wait_bounds(person, now, window))

    # ------------------------------------------------------------------------ personal data

    def export(self, person: str) -> dict[str, Any]:
        settings = self.settings(person)
        query = (
            sa.select(points.c.slot_at, points.c.event_id, points.c.action, points.c.visited_at)
            .where(points.c.principal == person)
            .order_by(points.c.slot_at)
        )
        with self.autocommit.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(query)]
        return {
            "every_minutes": settings.every_minutes,
            "pushes_per_day": settings.pushes_per_day,
            "decision_points": rows,
        }

    def forget(self, person: str) -> int:
        with self.engine.begin() as conn:
            conn.execute(people.delete().where(people.c.principal == person))
            return int(conn.execute(points.delete().where(points.c.principal == person)).rowcount)


def _wait_bounds(person: str, now: datetime, window: timedelta) -> dict[str, Any]:
    """The parameters of `_OPEN_WAITS`: the person's waits decided within `window` of `now`."""
    return {"person": person, "since": now - window, "now": now}


def _open_waits_query(bounds: dict[str, Any]) -> PgQuery[list[str]]:
    return PgQuery(
        _OPEN_WAITS_SQL,
        {**bounds, "action": WAIT},
        lambda rows: [event_id for (event_id,) in rows],
    )


def _point(person: str, slot: Slot) -> tuple[sa.ColumnElement[bool], ...]:
    return (points.c.principal == person, points.c.slot_at == slot.at)
