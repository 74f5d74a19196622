"""Group commit on the event loop: `group_commit`'s batching, with the batch sent by the loop
itself over a psycopg async connection of its own, and no thread in between (ADR 0024).

A batch that goes through a thread is handed over twice: the thread retakes the interpreter
to send it (and while the loop is busy it waits up to the 5 ms switch interval for it), then
answers the loop through `call_soon_threadsafe`. Here a coroutine queues its row on its own
loop and awaits a future; one task of that loop takes everything queued, sends it in one round
trip on the loop's connection, and settles the futures. While one batch is in flight the next
gathers, so the batch grows with the load and nothing waits on a timer, as on the thread.

A caller is answered only after the statement holding its row returned: in autocommit that is
after its commit, so acknowledged still means committed.

A connection that hangs rather than breaks would hold every batch of its loop behind it, so a
batch is bounded (ADR 0025). The connections carry a statement timeout (`Database.
connect_async`): a statement blocked on a lock is cancelled by the server, errs, and commits
nothing. Only when the server does not answer that either (a partition, a proxy that stopped
forwarding) does the loop act: it asks the server to cancel, and if neither the statement nor
the cancel answers, it fails the batch with `Unanswered` and cuts the connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import psycopg

from bandit.store.group_commit import BATCH_ROWS, COMMIT_SECONDS, GroupCommit, settle

Row = TypeVar("Row")
Result = TypeVar("Result")

Connection = psycopg.AsyncConnection[Any]

HOT_PATH_SLACK_SECONDS = 1.0
"""How much longer than its statement timeout the event loop waits for a hot-path batch before
it cancels the statement itself, and how long it then waits for the cancel (ADR 0025): the
server gives up first whenever it can be reached."""

SendBatch = Callable[
    [Connection, Sequence[Row]], Coroutine[Any, Any, Sequence[Result | BaseException]]
]
"""Sends rows in one round trip on an async connection in autocommit; one result (or the error
of that row) per row, in order."""


class Unanswered(psycopg.OperationalError):
    """The database answered neither a batch's statement within its timeout and slack nor the
    cancel sent for it: the connection is cut, and whether the statement committed cannot be
    known (it may have reached the server before the network failed)."""


@dataclass(eq=False)
class _OnLoop(Generic[Row, Result]):
    """One event loop's queue, its batch task while one runs, and its connection once open."""

    queue: list[tuple[Row, asyncio.Future[Result]]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None
    connection: Connection | None = None

    def abandon(self) -> None:
        """Close the connection without the loop (it is gone): libpq closes its socket."""
        if self.connection is not None:
            self.connection.pgconn.finish()
            self.connection = None


class LoopCommit(Generic[Row, Result]):
    """Sends queued rows in batches on the running event loop, over that loop's connection.

    A psycopg async connection belongs to the loop it was opened on, so each loop that writes
    gets its own queue, batch task and connection (the api has one loop; a test's
    `TestClient` runs another in a thread), kept while the loop lives. The connection opens
    with the loop's first batch (`connect`) and again for the batch after one that found it
    broken: the batch in flight fails with the error, as on the thread. A loop that cannot be
    held a weak reference to has no state here: its rows go to `otherwise`, the thread's
    group commit.

    `statement_timeout` is the one the `connect`ed connections carry (seconds; None: none, and
    a batch waits as long as its connection does). With it, a batch still unanswered
    `HOT_PATH_SLACK_SECONDS` past it is cancelled from here (`_bounded`).
    """

    def __init__(
        self,
        send: SendBatch[Row, Result],
        *,
        connect: Callable[[], Awaitable[Connection]],
        otherwise: GroupCommit[Row, Result],
        name: str,
        max_batch: int = 256,
        statement_timeout: float | None = None,
    ) -> None:
        self._send = send
        self._connect = connect
        self._statement_timeout = statement_timeout
        self._otherwise = otherwise
        self._name = name
        self._max_batch = max_batch
        self._loops: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _OnLoop[Row, Result]]
        self._loops = weakref.WeakKeyDictionary()
        self._rows = BATCH_ROWS.labels(name)
        self._seconds = COMMIT_SECONDS.labels(name)

    async def write(self, row: Row) -> Result:
        """Queue `row`, await the batch holding it, and return its result; raises what
        sending it raised (the batch's error when the whole batch failed).

        A caller cancelled while it waits is not answered, but a row taken into a batch is
        sent all the same: the batch runs in a task of its own, not in any caller's.
        """
        loop = asyncio.get_running_loop()
        here = self._here(loop)
        if here is None:
            return await self._otherwise.write_async(row)
        waiter: asyncio.Future[Result] = loop.create_future()
        here.queue.append((row, waiter))
        if here.task is None or here.task.done():
            here.task = loop.create_task(self._run(here), name=self._name)
        return await waiter

    def _here(self, loop: asyncio.AbstractEventLoop) -> _OnLoop[Row, Result] | None:
        try:
            here = self._loops.get(loop)
            if here is None:
                here = self._loops[loop] = _OnLoop()
                # A loop that ends without `close` (a test's `asyncio.run`) leaves its
                # connection to nobody: it is closed when the loop is collected.
                weakref.finalize(loop, here.abandon)
        except TypeError:  # no weak reference to this loop: nothing can be kept for it
            return None
        return here

    async def _run(self, here: _OnLoop[Row, Result]) -> None:
        batch: list[tuple[Row, asyncio.Future[Result]]] = []
        try:
            while here.queue:
                batch = here.queue[: self._max_batch]
                del here.queue[: self._max_batch]
                self._rows.observe(len(batch))
                with self._seconds.time():
                    results = await self._batch(here, [row for row, _ in batch])
                for (_, waiter), result in zip(batch, results, strict=True):
                    if not waiter.done():  # a cancelled caller is done
                        settle(waiter, result)
        except asyncio.CancelledError:
            # The loop is shutting down with rows in flight: none of them is acknowledged.
            for _, waiter in batch + here.queue:
                waiter.cancel()
            here.queue.clear()
            raise
        finally:
            here.task = None

    async def _batch(
        self, here: _OnLoop[Row, Result], rows: Sequence[Row]
    ) -> Sequence[Result | BaseException]:
        try:
            if here.connection is None:
                here.connection = await self._connect()
            return await self._bounded(here.connection, rows)
        except Exception as exc:  # every caller of the batch is answered, with the cause
            return [exc] * len(rows)
        finally:
            if here.connection is not None and here.connection.closed:
                # Closed under it (a restart, a failover, a terminated backend): the next
                # batch opens another.
                await _close(here.connection)
                here.connection = None

    async def _bounded(
        self, connection: Connection, rows: Sequence[Row]
    ) -> Sequence[Result | BaseException]:
        """`send` on `connection`, answered within the statement timeout and three slacks.

        The server cancels a statement past its timeout, so a batch unanswered after the
        timeout and a slack met a server that cannot answer. The loop then asks it to cancel
        (`cancel_safe`, over a connection of its own) and waits a slack more: a statement
        cancelled errs and commits nothing, one that finished meanwhile answers as it would
        have. Past that, the connection is cut and the batch fails with `Unanswered`.

        The statement is never interrupted on the client (`asyncio.timeout`): psycopg would
        then cancel and wait for it itself, for up to 10 s, and the batch could not tell a
        statement cancelled from one committed.
        """
        if self._statement_timeout is None:
            return await self._send(connection, rows)
        # Named as the batch task is: the batch is still this LoopCommit's, wherever it runs.
        sending = asyncio.get_running_loop().create_task(
            self._send(connection, rows), name=self._name
        )
        if await _finished(sending, self._statement_timeout + HOT_PATH_SLACK_SECONDS):
            return sending.result()
        with contextlib.suppress(psycopg.Error, OSError):  # unreachable: the wait below tells
            await connection.cancel_safe(timeout=HOT_PATH_SLACK_SECONDS)
        if await _finished(sending, HOT_PATH_SLACK_SECONDS):
            return sending.result()
        # Cut first: psycopg then lets the cancelled send go at once, with no cancel of its own.
        connection.pgconn.finish()
        sending.cancel()
        await _finished(sending, HOT_PATH_SLACK_SECONDS)
        raise Unanswered(
            f"the database answered neither a {self._name} batch nor its cancel (statement "
            f"timeout {self._statement_timeout:g} s); its connection is cut"
        )

    async def close(self) -> None:
        """Once the running loop's queued rows are sent, close its connection (at the app's
        shutdown: `api.app`). A later write opens another."""
        loop = asyncio.get_running_loop()
        here = self._here(loop)
        if here is None:
            return
        while here.task is not None and not here.task.done():
            await asyncio.wait([here.task])
        if here.connection is not None:
            await _close(here.connection)
            here.connection = None


async def _finished(task: asyncio.Future[Any], seconds: float) -> bool:
    """Whether `task` is done within `seconds`; it runs on either way."""
    done, _ = await asyncio.wait([task], timeout=seconds)
    return bool(done)


async def _close(connection: Connection) -> None:
    with contextlib.suppress(psycopg.Error, OSError):
        await connection.close()
