"""Recommend's reads on PostgreSQL, batched on the event loop (ADR 0020, 0024).

Before deciding, recommend reads the person's moment (profile, fresh signals, recent choices,
integration statuses: one statement) and whether a visit now rewards a wait of the timing
surface (one more). Each recommend took a trip to a worker thread for them, and among 16
requests in flight the threads passing the GIL back and forth cost more than the reads: about
420 µs of CPU per recommend against about 110 for the same reads alone.

Here the reads of every recommend waiting at that moment are sent in one psycopg pipeline (one
round trip), and the waiting coroutines are answered from it: the group-commit machinery
(ADR 0013), used for reads. While one batch is read the next one gathers, so the batch grows
with the load and nothing waits on a timer. The event loop sends the batch itself over an
async connection of its own (`bandit.store.loop_commit`); a loop that can keep none sends it
through one thread, as before ADR 0024.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg

from bandit.store import GroupCommit, LoopCommit, PgQuery, Store
from integrations.tip_decisions import Moment, Quiet, TipDecisions
from notifier.timing import Timing

Request = tuple[str, datetime]
"""(person, now)."""

Answer = tuple[Moment | Quiet, bool]
"""The person's moment (or Quiet), and whether a visit now rewards a wait of theirs."""


class RecommendReads:
    """Batched reads for recommend on PostgreSQL. One per api process; each event loop that
    reads gets its own batches and connection."""

    def __init__(self, store: Store, decisions: TipDecisions, timing: Timing) -> None:
        assert not store.is_sqlite, "RecommendReads is for PostgreSQL"
        self._store = store
        self._decisions = decisions
        self._timing = timing
        self._on_loop: LoopCommit[Request, Answer] = store.on_loop(
            self._read_async, GroupCommit(self._read, name="recommend-reads")
        )

    async def read(self, person: str, now: datetime) -> Answer:
        """The person's moment at `now` and whether they have an open wait, from the batch
        that holds this request; raises what reading it raised (`psycopg.OperationalError`
        while the database is down)."""
        return await self._on_loop.write((person, now))

    async def close(self) -> None:
        """Close the running loop's connection for reads, once its batches are read."""
        await self._on_loop.close()

    def _queries(self, requests: Sequence[Request]) -> list[PgQuery[Any]]:
        """Each request's two reads, in order: its moment, then whether it has an open wait."""
        return [
            query
            for person, now in requests
            for query in (
                self._decisions.read_query(person, now),
                self._timing.waiting_query(person, now),
            )
        ]

    async def _read_async(
        self, conn: psycopg.AsyncConnection[Any], requests: Sequence[Request]
    ) -> list[Answer]:
        queries = self._queries(requests)
        async with conn.pipeline():
            cursors = [await conn.execute(query.sql, query.params) for query in queries]
        rows = [await cursor.fetchall() for cursor in cursors]
        return _paired([query.decode(found) for query, found in zip(queries, rows, strict=True)])

    def _read(self, requests: Sequence[Request]) -> list[Answer]:
        """`_read_async` on a thread's pooled connection."""
        with self._store.raw() as conn, conn.pipeline():
            pending = [query.send(conn) for query in self._queries(requests)]
        return _paired([answer() for answer in pending])


def _paired(answers: list[Any]) -> list[Answer]:
    """Each request's (moment, waiting) from the answers of `_queries`."""
    return list(zip(answers[::2], answers[1::2], strict=True))
