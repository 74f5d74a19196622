"""Group commit: concurrent writers share one transaction, and each returns once it is durable.

A commit costs a flush to disk (SQLite's WAL fsync, PostgreSQL's WAL flush) or a round trip,
whatever it holds; one commit per decision caps a process at one decision per flush. Here a
writer queues its row and waits; one thread takes everything queued and commits it in one
transaction, then wakes the writers with their results. While one batch commits, the next one
gathers, so the batch grows with the load and nothing waits on a timer (ADR 0013).

A writer is answered only after the commit that holds its row: acknowledged still means
committed, and a process killed mid-batch loses only rows nobody was told about.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

from prometheus_client import Histogram

BATCH_ROWS = Histogram(
    "oo_group_commit_rows",
    "Rows per group-committed transaction, by log (decision-log): how many writers share a commit",
    ["log"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
COMMIT_SECONDS = Histogram(
    "oo_group_commit_seconds",
    "Time to commit one group-committed transaction, by log: the least any decision waits",
    ["log"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

Row = TypeVar("Row")
Result = TypeVar("Result")

CommitBatch = Callable[[Sequence[Row]], Sequence[Result | BaseException]]
"""Commits rows in one transaction; one result (or the error of that row) per row, in order."""


class GroupCommit(Generic[Row, Result]):
    """Commits queued rows in batches on one writer thread. Thread-safe; one per table.

    The thread starts with the first row and ends after `idle_seconds` without one, so an
    idle store holds no thread (and a short-lived one in a test leaves none behind).
    """

    def __init__(
        self,
        commit: CommitBatch[Row, Result],
        *,
        name: str,
        max_batch: int = 256,
        idle_seconds: float = 5.0,
    ) -> None:
        self._commit = commit
        self._name = name
        self._max_batch = max_batch
        self._idle_seconds = idle_seconds
        self._queue: list[tuple[Row, Future[Result]]] = []
        self._ready = threading.Condition()
        self._writing = False
        self._rows = BATCH_ROWS.labels(name)
        self._seconds = COMMIT_SECONDS.labels(name)

    def write(self, row: Row) -> Result:
        """Queue `row`, wait until the batch holding it is committed, and return its result.

        Raises what committing the row raised (the batch's error when the whole batch failed).
        """
        return self._enqueue(row).result()

    async def write_async(self, row: Row) -> Result:
        """`write` for a coroutine: the event loop serves other requests while the batch
        holding `row` commits, and no worker thread is held waiting for it."""
        return await asyncio.wrap_future(self._enqueue(row))

    def _enqueue(self, row: Row) -> Future[Result]:
        # The lock is held only to append (the writer thread releases it before committing),
        # so an event loop may take it without stalling.
        future: Future[Result] = Future()
        with self._ready:
            self._queue.append((row, future))
            if self._writing:
                self._ready.notify()
            else:
                self._writing = True
                threading.Thread(target=self._run, name=self._name, daemon=True).start()
        return future

    def _run(self) -> None:
        while True:
            with self._ready:
                if not self._queue:
                    self._ready.wait(self._idle_seconds)
                if not self._queue:
                    self._writing = False
                    return
                batch = self._queue[: self._max_batch]
                del self._queue[: self._max_batch]
            self._rows.observe(len(batch))
            with self._seconds.time():
                self._write(batch)

    def _write(self, batch: list[tuple[Row, Future[Result]]]) -> None:
        # A waiter taken into a batch can no longer be cancelled, so its answer can always be
        # set. One cancelled before (its coroutine was, at shutdown say) is not answered, but
        # its row is committed all the same; setting its answer would raise and end the thread.
        waiting = [future.set_running_or_notify_cancel() for _, future in batch]
        try:
            results = self._commit([row for row, _ in batch])
        except BaseException as exc:  # every waiter must be woken, with the cause
            for (_, future), waits in zip(batch, waiting, strict=True):
                if waits:
                    future.set_exception(exc)
            return
        for (_, future), waits, result in zip(batch, waiting, results, strict=True):
            if not waits:
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
