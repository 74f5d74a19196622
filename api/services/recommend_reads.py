"""Recommend's reads on PostgreSQL, batched on one thread (ADR 0020).

Before deciding, recommend reads the person's moment (profile, fresh signals, recent choices,
integration statuses: one statement) and whether a visit now rewards a wait of the timing
surface (one more). Each recommend took a trip to a worker thread for them, and among 16
requests in flight the threads passing the GIL back and forth cost more than the reads: about
420 µs of CPU per recommend against about 110 for the same reads alone.

Here the reads of every recommend waiting at that moment go to one thread, which sends them all
in one psycopg pipeline (one round trip) and answers the waiting coroutines with one callback
per batch: the group-commit machinery (ADR 0013), used for reads. While one batch is read the
next one gathers, so the batch grows with the load and nothing waits on a timer.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bandit.store import GroupCommit, PgQuery, Store
from integrations.tip_decisions import Moment, Quiet, TipDecisions
from notifier.timing import Timing

Request = tuple[str, datetime]
"""(person, now)."""

Answer = tuple[Moment | Quiet, bool]
"""The person's moment (or Quiet), and whether a visit now rewards a wait of theirs."""


class RecommendReads:
    """Batched reads for recommend on PostgreSQL. Thread-safe; one per api process."""

    def __init__(self, store: Store, decisions: TipDecisions, timing: Timing) -> None:
        assert not store.is_sqlite, "RecommendReads is for PostgreSQL"
        self._store = store
        self._decisions = decisions
        self._timing = timing
        self._batches: GroupCommit[Request, Answer] = GroupCommit(
            self._read, name="recommend-reads"
        )

    async def read(self, person: str, now: datetime) -> Answer:
        """The person's moment at `now` and whether they have an open wait, from the batch
        that holds this request; raises what reading it raised (`psycopg.OperationalError`
        while the database is down)."""
        return await self._batches.write_async((person, now))

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

    def _read(self, requests: Sequence[Request]) -> list[Answer]:
        with self._store.raw() as conn, conn.pipeline():
            pending = [query.send(conn) for query in self._queries(requests)]
        answers = [answer() for answer in pending]
        return list(zip(answers[::2], answers[1::2], strict=True))
