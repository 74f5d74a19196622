"""The write path: log a decision, activate it, record its reward.

Every api worker runs these per request, so each is the fewest statements it can be. Decisions
are group-committed (`group_commit`, ADR 0013): concurrent decisions share one transaction —
one multi-row INSERT straight through psycopg on PostgreSQL (sent by the event loop itself for
the decisions it awaits: `loop_commit`, ADR 0024), one fsync on SQLite — and each caller returns
once its decision is committed. Rewards are group-committed the same way (`reward_log`, ADR
0021), on PostgreSQL by the event loop too, on a connection of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from datetime import datetime, timedelta
from functools import lru_cache, partial
from typing import Any, Required, TypedDict, Unpack

import psycopg
import sqlalchemy as sa
from psycopg.types.json import Json
from sqlalchemy.engine import Dialect, Engine

from bandit.events import Decision, utcnow
from bandit.store.database import decision_json
from bandit.store.group_commit import GroupCommit
from bandit.store.loop_commit import LoopCommit, Result, Row, SendBatch
from bandit.store.records import RewardOutcome
from bandit.store.reward_log import Recorded, RewardClaim, RewardLog
from bandit.store.rows import _JSON_COLUMNS, _row, decisions
from bandit.store.steps import run, run_async

_UNREACHABLE = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    sa.exc.OperationalError,
    sa.exc.InterfaceError,
)
"""Errors of the database rather than of a row: a batch that meets one fails as a whole."""


@lru_cache(maxsize=64)
def _insert_sql(columns: tuple[str, ...], rows: int) -> str:
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    return (
        f"INSERT INTO decisions ({', '.join(columns)}) VALUES "
        f"{', '.join([placeholders] * rows)} ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
    )


def _pg_insert(rows: Sequence[dict[str, Any]]) -> tuple[str, list[Any]]:
    """The PostgreSQL INSERT of `rows` (distinct event ids) and its values, the JSON columns
    written by `decision_json`."""
    values = [
        Json(v, decision_json) if k in _JSON_COLUMNS else v for row in rows for k, v in row.items()
    ]
    return _insert_sql(tuple(rows[0]), len(rows)), values


Inserted = set[str] | Exception
"""What inserting some decision rows in one statement gave: the event ids it inserted, or the
error it raised."""


def _decision_steps(
    rows: Sequence[dict[str, Any]],
) -> Generator[list[dict[str, Any]], Inserted, list[bool | Exception]]:
    """What committing a batch of decision rows takes, whoever sends its statements (`steps`):
    yields the rows of each INSERT, is sent what it gave, and returns each row's answer, in
    order: True for a row inserted, False for a logged event id.

    A twin in the batch (an event id twice) is a logged event id for all but its first. A row
    the database refuses fails alone: the batch is retried row by row, so one bad decision
    never fails the others. An unreachable database fails them all at once (raised).
    """
    first: dict[str, int] = {}
    for i, row in enumerate(rows):
        first.setdefault(row["event_id"], i)
    unique = [row for i, row in enumerate(rows) if first[row["event_id"]] == i]
    inserted = yield unique
    if isinstance(inserted, _UNREACHABLE):
        raise inserted
    if isinstance(inserted, Exception):
        if len(unique) == 1:
            return [inserted] * len(rows)
        out: list[bool | Exception] = []
        for i, row in enumerate(rows):
            if first[row["event_id"]] != i:
                out.append(False)
                continue
            alone = yield [row]
            out.append(alone if isinstance(alone, Exception) else bool(alone))
        return out
    return [
        first[row["event_id"]] == i and row["event_id"] in inserted for i, row in enumerate(rows)
    ]


async def _inserted_async(
    connection: psycopg.AsyncConnection[Any], rows: Sequence[dict[str, Any]]
) -> Inserted:
    """`Writes._inserted` on an async connection (PostgreSQL, autocommit)."""
    try:
        cursor = await connection.execute(*_pg_insert(rows))
        return {event_id for (event_id,) in await cursor.fetchall()}
    except Exception as exc:
        return exc


def _rolled_back(exc: Exception) -> bool:
    """Whether PostgreSQL rolled the transaction back itself (SQLSTATE class 40: a deadlock or
    a serialization failure it detected). psycopg raises `DeadlockDetected` and
    `SerializationFailure` as operational errors, not as `TransactionRollback`s."""
    return isinstance(exc, psycopg.Error) and (exc.sqlstate or "").startswith("40")


Recording = list[Recorded] | Exception
"""What recording some reward claims in one transaction gave: what each did, or the error it
raised."""


def _reward_steps(
    claims: Sequence[RewardClaim],
) -> Generator[Sequence[RewardClaim], Recording, list[Recorded | Exception]]:
    """What committing a batch of reward claims takes, whoever sends its statements (`steps`):
    yields the claims of each transaction, is sent what it gave, and returns each claim's
    answer, in order.

    One transaction records them all. A claim the database refuses fails alone, and a batch
    PostgreSQL rolled back (a deadlock or serialization failure it detected) is retried claim
    by claim; an unreachable database fails them all (raised).
    """
    recorded = yield claims
    if not isinstance(recorded, Exception):
        return list(recorded)
    if _rolled_back(recorded):
        if len(claims) == 1:
            raise recorded
    elif isinstance(recorded, _UNREACHABLE):
        raise recorded
    elif len(claims) == 1:
        return [recorded]
    out: list[Recorded | Exception] = []
    for claim in claims:
        alone = yield [claim]
        if isinstance(alone, _UNREACHABLE):  # a rollback of one claim too
            raise alone
        out.extend([alone] if isinstance(alone, Exception) else alone)
    return out


@lru_cache(maxsize=8)
def _sqlite_processors(
    columns: tuple[str, ...], dialect: Dialect
) -> list[Callable[[Any], Any] | None]:
    """Each column's bind processor for SQLite: the value conversions SQLAlchemy would apply
    (JSON text, UTC datetimes, booleans), taken from the table's own column types as SQLite's
    dialect implements them (`dialect_impl`: the generic types would store datetimes with their
    offset), so the stored values are the same as through SQLAlchemy. The JSON columns are
    written by `decision_json`, as on PostgreSQL."""
    return [
        decision_json
        if name in _JSON_COLUMNS
        else decisions.c[name].type.dialect_impl(dialect).bind_processor(dialect)
        for name in columns
    ]


@lru_cache(maxsize=64)
def _sqlite_insert(columns: tuple[str, ...], rows: int) -> str:
    """The SQLite INSERT of `rows` decision rows in one statement."""
    placeholders = "(" + ", ".join("?" * len(columns)) + ")"
    return f"INSERT INTO decisions ({', '.join(columns)}) VALUES {', '.join([placeholders] * rows)}"


@lru_cache(maxsize=64)
def _sqlite_logged(rows: int) -> str:
    """Which of `rows` event ids the decision log holds already."""
    return f"SELECT event_id FROM decisions WHERE event_id IN ({', '.join('?' * rows)})"


SQLITE_BATCH_ROWS = 48
"""Decision rows per INSERT statement on SQLite: 48 rows of 20 columns bind 960 values, under
the 999 SQLite allowed before 3.32. A larger batch takes several statements, still one
transaction."""


class Writes(RewardLog):
    """Decisions, their activation and their rewards, as the api logs them."""

    def __init__(self, engine: Engine, *, statement_timeout: float | None = None) -> None:
        super().__init__(engine, statement_timeout=statement_timeout)
        self._decision_log: GroupCommit[dict[str, Any], bool] = GroupCommit(
            self._commit_decisions, name="decision-log"
        )
        self._decision_log_on_loop = self._on_loop(self._commit_decisions_async, self._decision_log)
        self._reward_log: GroupCommit[RewardClaim, Recorded] = GroupCommit(
            self._commit_rewards, name="reward-log"
        )
        # Rewards on a connection of their own: a reward batch is a transaction, and one open
        # on the decisions' connection would hold their autocommit INSERTs in it.
        self._reward_log_on_loop = self._on_loop(self._commit_rewards_async, self._reward_log)

    def _on_loop(
        self, send: SendBatch[Row, Result], otherwise: GroupCommit[Row, Result]
    ) -> LoopCommit[Row, Result] | None:
        """`on_loop` on PostgreSQL; None on SQLite, whose batches stay on the writer thread,
        behind the write lock."""
        return None if self.is_sqlite else self.on_loop(send, otherwise)

    def insert_decision(self, decision: Decision) -> bool:
        """Log `decision` durably; False when its event id was already logged.

        Returns once the transaction holding it is committed (shared with the decisions
        logged concurrently).
        """
        return self._decision_log.write(_row(decision))

    async def insert_decision_async(self, decision: Decision) -> bool:
        """`insert_decision` for the event loop: awaits the commit without holding a thread.
        On PostgreSQL the loop sends the batch itself (ADR 0024)."""
        if self._decision_log_on_loop is not None:
            return await self._decision_log_on_loop.write(_row(decision))
        return await self._decision_log.write_async(_row(decision))

    async def close_on_loop(self) -> None:
        """Close the running loop's connections for decisions and rewards, once their batches
        are sent."""
        for on_loop in (self._decision_log_on_loop, self._reward_log_on_loop):
            if on_loop is not None:
                await on_loop.close()

    def _commit_decisions(self, rows: Sequence[dict[str, Any]]) -> list[bool | Exception]:
        """One transaction for `rows`; True for each row inserted, False for a logged event id
        (`_decision_steps`)."""
        return run(_decision_steps(rows), self._inserted)

    def _inserted(self, rows: Sequence[dict[str, Any]]) -> Inserted:
        try:
            return self._insert_decisions(rows)
        except Exception as exc:
            return exc

    async def _commit_decisions_async(
        self, connection: psycopg.AsyncConnection[Any], rows: Sequence[dict[str, Any]]
    ) -> list[bool | Exception]:
        """`_commit_decisions` on the event loop's `connection` (PostgreSQL, autocommit)."""
        return await run_async(_decision_steps(rows), partial(_inserted_async, connection))

    def _insert_decisions(self, rows: Sequence[dict[str, Any]]) -> set[str]:
        """Insert `rows` (distinct event ids) in one transaction; the event ids inserted."""
        if not self.is_sqlite:
            with self.raw() as conn:
                cursor = conn.execute(*_pg_insert(rows))
                return {event_id for (event_id,) in cursor.fetchall()}
        # Under the write lock from BEGIN (IMMEDIATE), so nobody inserts between the lookup and
        # the insert: one statement finds the event ids logged already, and one inserts the
        # others. A statement per row released and retook the GIL for each row, and under load
        # each retake waited for the event loop to let go of it (ADR 0022).
        columns = tuple(rows[0])
        processors = _sqlite_processors(columns, self.engine.dialect)
        inserted: set[str] = set()
        with self.sqlite_write(immediate=True) as conn:
            for start in range(0, len(rows), SQLITE_BATCH_ROWS):
                chunk = rows[start : start + SQLITE_BATCH_ROWS]
                ids = [row["event_id"] for row in chunk]
                logged = {event_id for (event_id,) in conn.execute(_sqlite_logged(len(ids)), ids)}
                fresh = [row for row in chunk if row["event_id"] not in logged]
                if not fresh:
                    continue
                values = [
                    value if process is None else process(value)
                    for row in fresh
                    for process, value in zip(processors, row.values(), strict=True)
                ]
                conn.execute(_sqlite_insert(columns, len(fresh)), values)
                inserted.update(row["event_id"] for row in fresh)
        return inserted

    def activate(self, event_id: str, at: datetime | None = None) -> bool:
        """Mark a deferred decision activated (first activation wins); False if unknown."""
        with self._write() as conn:
            if self.bound is not None:
                conn.exec_driver_sql(self.bound)
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
        self, event_id: str, value: float, **terms: Unpack[RewardTerms]
    ) -> RewardOutcome | None:
        """Record the first reward of a decision ("earliest" aggregation).

        Returns None for an unknown event id, or one whose decision is not `owner`'s
        ((principal, surface), when given). A reward that arrives after the reward `window`
        of an activated decision, or once its decision was learned, is recorded as late: kept
        for the record, never learned. A second reward for the same event id changes nothing
        and returns the first, unless `aggregation` is "sum": then a second on-time reward of
        a decision not yet learned is added to the first (the outcome's `value` is the sum,
        `created` stays False). Returns once the transaction holding it is committed (shared
        with the rewards recorded concurrently: `reward_log`).
        """
        return self._reward_log.write(_claim(event_id, value, **terms))

    async def record_reward_async(
        self, event_id: str, value: float, **terms: Unpack[RewardTerms]
    ) -> RewardOutcome | None:
        """`record_reward` for the event loop: awaits the commit without holding a thread.
        On PostgreSQL the loop sends the batch itself (ADR 0024)."""
        if self._reward_log_on_loop is not None:
            return await self._reward_log_on_loop.write(_claim(event_id, value, **terms))
        return await self._reward_log.write_async(_claim(event_id, value, **terms))

    def _commit_rewards(self, claims: Sequence[RewardClaim]) -> list[Recorded | Exception]:
        """One transaction for `claims`; what each did (`_reward_steps`)."""
        return run(_reward_steps(claims), self._recorded)

    def _recorded(self, claims: Sequence[RewardClaim]) -> Recording:
        try:
            return self._record_rewards(claims)
        except Exception as exc:
            return exc

    async def _commit_rewards_async(
        self, connection: psycopg.AsyncConnection[Any], claims: Sequence[RewardClaim]
    ) -> list[Recorded | Exception]:
        """`_commit_rewards` on the event loop's `connection` (PostgreSQL, autocommit)."""
        return await run_async(_reward_steps(claims), partial(self._recorded_async, connection))

    async def _recorded_async(
        self, connection: psycopg.AsyncConnection[Any], claims: Sequence[RewardClaim]
    ) -> Recording:
        try:
            return await self._record_rewards_async(connection, claims)
        except Exception as exc:
            return exc


class RewardTerms(TypedDict, total=False):
    """How `record_reward` records a reward (its keyword arguments)."""

    reaction: Required[str | None]
    window: Required[timedelta]
    at: datetime | None
    """When it arrived (now by default)."""
    aggregation: str
    """"earliest" (the default) or "sum"."""
    owner: tuple[str, str] | None
    """(principal, surface) the decision must have; any by default."""


def _claim(
    event_id: str,
    value: float,
    *,
    reaction: str | None,
    window: timedelta,
    at: datetime | None = None,
    aggregation: str = "earliest",
    owner: tuple[str, str] | None = None,
) -> RewardClaim:
    return RewardClaim(
        event_id, value, reaction, at or utcnow(), window, aggregation == "sum", owner
    )
