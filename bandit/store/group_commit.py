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
import contextlib
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any, Generic, TypeVar

from prometheus_client import Histogram

BATCH_ROWS = Histogram(
    "oo_group_commit_rows",
    "Rows per group-committed transaction, by log (decision-log, reward-log), or requests per "
    "batched round trip (recommend-reads, rate-limits, bus-publish): how many callers share one",
    ["log"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
COMMIT_SECONDS = Histogram(
    "oo_group_commit_seconds",
    "Time to commit one group-committed transaction (or send one batch), by log: the least any "
    "caller waits",
    ["log"],
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)

Row = TypeVar("Row")
Result = TypeVar("Result")

CommitBatch = Callable[[Sequence[Row]], Sequence[Result | BaseException]]
"""Commits rows in one transaction; one result (or the error of that row) per row, in order."""

Waiter = Future[Result] | asyncio.Future[Result]
"""Who waits for a row: a thread (`write`), or a coroutine on an event loop (`write_async`)."""


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
        self.name = name
        self._max_batch = max_batch
        self._idle_seconds = idle_seconds
        self._queue: list[tuple[Row, Waiter[Result]]] = []
        self._ready = threading.Condition()
        self._writing = False
        self._rows = BATCH_ROWS.labels(name)
        self._seconds = COMMIT_SECONDS.labels(name)

    def write(self, row: Row) -> Result:
        """Queue `row`, wait until the batch holding it is committed, and return its result.

        Raises what committing the row raised (the batch's error when the whole batch failed).
        """
        future: Future[Result] = Future()
        self._enqueue(row, future)
        return future.result()

    def submit(self, row: Row) -> None:
        """Queue `row` and return at once: its result, or its error, goes to nobody. For work a
        caller need not wait for, such as telling the learner (a lost message only delays it)."""
        self._enqueue(row, Future())

    async def write_async(self, row: Row) -> Result:
        """`write` for a coroutine: the event loop serves other requests while the batch
        holding `row` commits, and no worker thread is held waiting for it.

        The writer answers all of a batch's coroutines on one loop with one callback, so the
        loop wakes once per commit rather than once per row.
        """
        waiter: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._enqueue(row, waiter)
        return await waiter

    def _enqueue(self, row: Row, waiter: Waiter[Result]) -> None:
        # The lock is held only to append (the writer thread releases it before committing),
        # so an event loop may take it without stalling.
        with self._ready:
            self._queue.append((row, waiter))
            if self._writing:
                # The writer waits only on an empty queue: a row joining others finds it
                # already woken (or busy committing), and waking a thread is a system call.
                if len(self._queue) == 1:
                    self._ready.notify()
            else:
                self._writing = True
                threading.Thread(target=self._run, name=self.name, daemon=True).start()

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

    def _write(self, batch: list[tuple[Row, Waiter[Result]]]) -> None:
        # A thread's waiter taken into a batch can no longer be cancelled, so its answer can
        # always be set. One cancelled before (a coroutine cancelled at shutdown, say) is not
        # answered, but its row is committed all the same.
        waiting = [
            waiter.set_running_or_notify_cancel() if isinstance(waiter, Future) else True
            for _, waiter in batch
        ]
        results: Sequence[Result | BaseException]
        try:
            results = self._commit([row for row, _ in batch])
        except BaseException as exc:  # every waiter must be woken, with the cause
            results = [exc] * len(batch)
        on_loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Result], Any]]] = {}
        for (_, waiter), waits, result in zip(batch, waiting, results, strict=True):
            if isinstance(waiter, Future):
                if waits:
                    settle(waiter, result)
            else:
                on_loops.setdefault(waiter.get_loop(), []).append((waiter, result))
        for loop, answers in on_loops.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody there waits
                loop.call_soon_threadsafe(_answer, answers)


def settle(waiter: Waiter[Result], result: Any) -> None:
    if isinstance(result, BaseException):
        waiter.set_exception(result)
    else:
        waiter.set_result(result)


def _answer(answers: list[tuple[asyncio.Future[Result], Any]]) -> None:
    """On the waiters' loop: answer each coroutine still waiting (a cancelled one is done)."""
    for waiter, result in answers:
        if not waiter.done():
            settle(waiter, result)
