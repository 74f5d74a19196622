"""Recording rewards, group-committed like the decision log (ADR 0021).

A reward used to be its own transaction: read the decision, read an earlier reward, insert under
a savepoint, commit. Here concurrent rewards share one transaction and one flush, and each is as
few statements as its backend allows:

- PostgreSQL: one `INSERT … SELECT … ON CONFLICT DO NOTHING` per reward, all of a batch in one
  pipeline, so the batch is one round trip. The decision's owner and whether the reward is late
  are checked in the statement, from the decision's row. Only a reward that inserted nothing
  (an unknown or someone else's event id, a repeat) takes a second statement, to sum or to
  answer with the first reward. Other processes record rewards concurrently; the unique event
  id decides which one is first, and a batch takes its rows' locks in event-id order, so two
  batches never wait on each other in a cycle. The statements and what their rows mean are one
  generator (`_pg_steps`), sent by the writer thread on a pooled connection or by the event
  loop on one of its own (ADR 0024's amendment).
- SQLite: one writer at a time (the store's write lock, and `BEGIN IMMEDIATE` against other
  processes), so a reward reads its decision and earlier reward in one indexed SELECT and
  writes knowing what is there: no savepoint, no conflict to recover from.

A reward is acknowledged only once the transaction holding it is committed.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property, partial
from typing import Any

import psycopg
import sqlalchemy as sa

from bandit.store.database import Database, SqliteRead
from bandit.store.records import RewardOutcome
from bandit.store.rows import decisions, rewards
from bandit.store.steps import run, run_async


@dataclass(frozen=True, slots=True)
class RewardClaim:
    """A reward to record, as queued for the reward log."""

    event_id: str
    value: float
    reaction: str | None
    at: datetime
    window: timedelta
    summing: bool
    """Whether an on-time repeat is added to the first reward ("sum" aggregation)."""
    owner: tuple[str, str] | None
    """(principal, surface) the decision must have; None records for any owner."""


Recorded = RewardOutcome | None
"""What recording a claim did; None when no decision of its owner has its event id."""

_OWNED_PG = (
    "d.event_id = %(event_id)s AND (%(principal)s::text IS NULL"
    " OR (d.principal = %(principal)s AND d.surface = %(surface)s))"
)
"""The claimed decision, when it is its owner's (any owner's when none is given)."""

_LATE_PG = (
    "(d.learn_seq IS NOT NULL"
    " OR coalesce(%(at)s::timestamptz > d.activated_at + %(window)s::interval, false))"
)
"""Whether a reward arriving now is late: its decision was learned (with the default reward),
or was activated more than the reward window ago."""

INSERT_REWARD_PG = f"""
INSERT INTO rewards (event_id, value, reaction, received_at, late)
SELECT d.event_id, %(value)s::float8, %(reaction)s::text, %(at)s::timestamptz, {_LATE_PG}
FROM decisions AS d WHERE {_OWNED_PG}
ON CONFLICT (event_id) DO NOTHING
RETURNING value, reaction, late
"""
"""The first reward of a decision; no row when the decision is not the owner's or already has
a reward (which a concurrent transaction may just have inserted: the conflict waits for it)."""

_SUM_REWARD_PG = f"""
UPDATE rewards AS r SET value = r.value + %(value)s::float8
FROM decisions AS d
WHERE r.event_id = d.event_id AND {_OWNED_PG} AND NOT r.late AND NOT {_LATE_PG}
RETURNING r.value, r.reaction, r.late
"""
"""A repeat reward added to the first, while neither is late."""

_FIRST_REWARD_PG = f"""
SELECT r.value, r.reaction, r.late
FROM rewards AS r JOIN decisions AS d ON d.event_id = r.event_id
WHERE {_OWNED_PG}
"""
"""The reward a repeat answers with."""


def _params(claim: RewardClaim) -> dict[str, Any]:
    principal, surface = claim.owner or (None, None)
    return {
        "event_id": claim.event_id,
        "value": claim.value,
        "reaction": claim.reaction,
        "at": claim.at,
        "window": claim.window,
        "principal": principal,
        "surface": surface,
    }


def _outcome(row: tuple[Any, ...] | None, *, created: bool) -> Recorded:
    if row is None:
        return None
    value, reaction, late = row
    return RewardOutcome(created, float(value), reaction, bool(late))


Statement = tuple[str, dict[str, Any]]
"""A statement and its parameters."""

Fetched = tuple[Any, ...] | None
"""A statement's first row (None when it returned none)."""


def _pg_steps(
    claims: Sequence[RewardClaim],
) -> Generator[list[Statement], list[Fetched], list[Recorded]]:
    """What recording `claims` in one transaction on PostgreSQL takes, whoever sends its
    statements (`steps`): yields each pipeline of statements, is sent their first rows, and
    returns what each claim did, in order."""
    # Every batch inserts in event-id order: two concurrent batches that share event ids
    # lock them in the same order, so neither can wait on the other in a cycle.
    order = sorted(range(len(claims)), key=lambda i: claims[i].event_id)
    params = [_params(claim) for claim in claims]
    results: list[Recorded] = [None] * len(claims)
    inserted = yield [(INSERT_REWARD_PG, params[i]) for i in order]
    repeats = []
    for i, row in zip(order, inserted, strict=True):
        results[i] = _outcome(row, created=True)
        if results[i] is None:
            repeats.append(i)
    # Repeats (and unknown event ids) in the same order, one by one: rare, and a sum must see
    # the first reward as it is now.
    for i in repeats:
        row = None
        if claims[i].summing:
            (row,) = yield [(_SUM_REWARD_PG, params[i])]
        if row is None:
            (row,) = yield [(_FIRST_REWARD_PG, params[i])]
        results[i] = _outcome(row, created=False)
    return results


def _fetched(connection: psycopg.Connection[Any], statements: list[Statement]) -> list[Fetched]:
    """Send `statements` in one pipeline (one round trip); each one's first row."""
    with connection.pipeline():
        cursors = [connection.execute(sql, params) for sql, params in statements]
    return [cursor.fetchone() for cursor in cursors]


async def _fetched_async(
    connection: psycopg.AsyncConnection[Any], statements: list[Statement]
) -> list[Fetched]:
    """`_fetched` on an async connection."""
    async with connection.pipeline():
        cursors = [await connection.execute(sql, params) for sql, params in statements]
    return [await cursor.fetchone() for cursor in cursors]


class RewardLog(Database):
    """The statements that record a batch of rewards in one transaction."""

    def _record_rewards(self, claims: Sequence[RewardClaim]) -> list[Recorded]:
        """Record `claims` in one transaction, in order; what each did."""
        if self.is_sqlite:
            return self._record_rewards_sqlite(claims)
        with self.raw() as conn, conn.transaction():
            if self.bound is not None:  # the loop's connections carry it from the start
                conn.execute(self.bound)
            return run(_pg_steps(claims), partial(_fetched, conn))

    async def _record_rewards_async(
        self, connection: psycopg.AsyncConnection[Any], claims: Sequence[RewardClaim]
    ) -> list[Recorded]:
        """`_record_rewards` on the event loop's `connection` (PostgreSQL, autocommit)."""
        async with connection.transaction():
            return await run_async(_pg_steps(claims), partial(_fetched_async, connection))

    def _record_rewards_sqlite(self, claims: Sequence[RewardClaim]) -> list[Recorded]:
        results: list[Recorded] = []
        stamp = self._received_at
        with self.sqlite_write(immediate=True) as conn:
            for claim in claims:
                found = self._claimed_read.rows(conn, event_id=claim.event_id)
                if not found or (claim.owner is not None and found[0][:2] != claim.owner):
                    results.append(None)
                    continue
                _, _, activated_at, learn_seq, first, reaction, first_late = found[0]
                late = learn_seq is not None or (
                    activated_at is not None and claim.at > activated_at + claim.window
                )
                if first is None:
                    conn.execute(
                        "INSERT INTO rewards (event_id, value, reaction, received_at, late) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (claim.event_id, claim.value, claim.reaction, stamp(claim.at), late),
                    )
                    results.append(RewardOutcome(True, claim.value, claim.reaction, late))
                elif claim.summing and not late and not first_late:
                    conn.execute(
                        "UPDATE rewards SET value = value + ? WHERE event_id = ?",
                        (claim.value, claim.event_id),
                    )
                    results.append(RewardOutcome(False, first + claim.value, reaction, False))
                else:
                    results.append(RewardOutcome(False, first, reaction, bool(first_late)))
        return results

    @cached_property
    def _claimed_read(self) -> SqliteRead:
        """A decision's owner, activation and learning mark, and its reward if it has one."""
        return SqliteRead(
            sa.select(
                decisions.c.principal,
                decisions.c.surface,
                decisions.c.activated_at,
                decisions.c.learn_seq,
                rewards.c.value,
                rewards.c.reaction,
                rewards.c.late,
            )
            .select_from(decisions.outerjoin(rewards, rewards.c.event_id == decisions.c.event_id))
            .where(decisions.c.event_id == sa.bindparam("event_id")),
            self.engine.dialect,
        )

    @cached_property
    def _received_at(self) -> Callable[[datetime], Any]:
        """A reward's time as SQLite stores it (the column type's own conversion)."""
        dialect = self.engine.dialect
        process = rewards.c.received_at.type.dialect_impl(dialect).bind_processor(dialect)
        assert process is not None
        return process
