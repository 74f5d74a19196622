"""The decision log group-committed on the event loop (ADR 0024), on a real PostgreSQL: the
loop's coroutines share its batches, each batch answers what the writer thread's answers (twins,
a refused row, logged event ids), a dropped connection fails one batch and the next reconnects,
each loop keeps its own connection, and a row taken into a batch is committed though its caller
was cancelled."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import replace
from typing import Any, TypeVar

import psycopg
import pytest
from prometheus_client import REGISTRY

from bandit.store import LoopCommit, Store
from bandit.store.rows import _row
from tests.bandit.test_group_commit import decision
from tests.conftest import Backend

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

LOG = "decision-log"


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    store = Store.connect(backend.database_url)
    yield store
    store.engine.dispose()


def _on_loop(store: Store) -> LoopCommit[dict[str, Any], bool]:
    on_loop = store._decision_log_on_loop
    assert on_loop is not None
    return on_loop


def loop_connection(on_loop: LoopCommit[Any, Any] | None) -> psycopg.AsyncConnection[Any]:
    """The running loop's connection of `on_loop` (open once a batch was sent)."""
    assert on_loop is not None
    here = on_loop._here(asyncio.get_running_loop())
    assert here is not None and here.connection is not None
    return here.connection


def _connection(store: Store) -> psycopg.AsyncConnection[Any]:
    """The running loop's connection for decisions."""
    return loop_connection(store._decision_log_on_loop)


Batch = TypeVar("Batch")


def _shape(answers: Sequence[object]) -> list[object]:
    return [type(answer) if isinstance(answer, Exception) else answer for answer in answers]


def thread_then_loop(
    store: Store,
    seed: int,
    batches: int,
    draw: Callable[[random.Random, str], Batch],
    on_thread: Callable[[Batch], Sequence[object]],
    on_loop: Callable[[psycopg.AsyncConnection[Any], Batch], Awaitable[Sequence[object]]],
) -> tuple[list[list[object]], list[list[object]]]:
    """The same seeded batches (`draw(random, prefix)`), committed by the writer thread's
    `on_thread` under prefix "t" and then by the loop's `on_loop`, on a connection of its own,
    under prefix "a": each side's answers, batch by batch, errors by their type."""
    drawn = random.Random(seed)
    threaded = [_shape(on_thread(draw(drawn, "t"))) for _ in range(batches)]

    async def looped() -> list[list[object]]:
        answers, drawn = [], random.Random(seed)
        async with await store.connect_async() as connection:
            for _ in range(batches):
                answers.append(_shape(await on_loop(connection, draw(drawn, "a"))))
        return answers

    return threaded, asyncio.run(looped())


async def cancelled_in_flight(
    on_loop: LoopCommit[Any, Any], write: Callable[[], Awaitable[object]]
) -> None:
    """Start `write`, cancel its caller once its row is in a batch in flight, and close
    `on_loop` once that batch is sent."""
    caller = asyncio.ensure_future(write())
    here = on_loop._here(asyncio.get_running_loop())
    assert here is not None
    while not here.queue:  # queued by the caller
        await asyncio.sleep(0)
    while here.queue:  # taken into the batch, which is now in flight
        await asyncio.sleep(0)
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await on_loop.close()


def counted(log: str) -> tuple[float, float]:
    """(batches, rows) `log`'s group commit counted so far (`oo_group_commit_rows`)."""
    labels = {"log": log}
    count = REGISTRY.get_sample_value("oo_group_commit_rows_count", labels) or 0.0
    rows = REGISTRY.get_sample_value("oo_group_commit_rows_sum", labels) or 0.0
    return count, rows


def test_coroutines_awaiting_at_once_share_one_batch(store: Store) -> None:
    """The 64 coroutines of one `gather` all queue before the loop's batch task first runs:
    one INSERT holds them all, counted in `oo_group_commit_rows` like the thread's batches."""
    ids = [f"b{i}" for i in range(64)]

    async def log_all() -> list[bool]:
        answers = await asyncio.gather(*(store.insert_decision_async(decision(e)) for e in ids))
        await store.close_on_loop()
        return list(answers)

    batches, rows = counted(LOG)
    assert asyncio.run(log_all()) == [True] * 64
    assert counted(LOG) == (batches + 1, rows + 64)
    assert {d.decision.event_id for d in store.get_many(ids)} == set(ids)


def _batch(rng: random.Random, prefix: str) -> list[dict[str, Any]]:
    """A batch of decision rows drawn by `rng`: twins, event ids logged before, and now and
    then a row the database refuses (a NULL surface). `prefix` names the event ids, so the
    same draw can be written twice side by side."""
    rows = []
    for _ in range(rng.randint(1, 12)):
        n = rng.randint(0, 15)
        row = _row(decision(f"{prefix}{n}"))
        if rng.random() < 0.1:
            row = {**row, "surface": None}  # NOT NULL
        rows.append(row)
    return rows


@pytest.mark.parametrize("seed", range(6))
def test_the_loop_answers_each_batch_as_the_writer_thread_does(store: Store, seed: int) -> None:
    """The same seeded batches, written once by the thread's `_commit_decisions` and once by
    the loop's `_commit_decisions_async` under other event ids: the same answers, row for row,
    and the same decisions stored."""
    threaded, looped = thread_then_loop(
        store, seed, 5, _batch, store._commit_decisions, store._commit_decisions_async
    )
    assert looped == threaded
    by_thread = {d.decision.event_id[1:]: d.decision for d in store.get_many(_ids("t"))}
    by_loop = {d.decision.event_id[1:]: d.decision for d in store.get_many(_ids("a"))}
    assert by_thread.keys() == by_loop.keys()
    for n, logged in by_loop.items():
        assert replace(logged, event_id="", created_at=None, activated_at=None) == replace(
            by_thread[n], event_id="", created_at=None, activated_at=None
        )


def _ids(prefix: str) -> list[str]:
    return [f"{prefix}{n}" for n in range(16)]


def test_a_twin_is_logged_once_and_a_refused_row_fails_alone_in_a_loop_batch(
    store: Store,
) -> None:
    """Rows queued together on the loop share a batch; the database refuses one of them, and
    only its caller sees the error."""
    on_loop = _on_loop(store)
    good, twin, other = _row(decision("t1")), _row(decision("t1")), _row(decision("t2"))
    bad = {**_row(decision("t3")), "surface": None}  # NOT NULL

    async def together() -> list[object]:
        answers = await asyncio.gather(
            *(on_loop.write(row) for row in (good, twin, bad, other)), return_exceptions=True
        )
        await on_loop.close()
        return list(answers)

    batches, rows = counted(LOG)
    results = asyncio.run(together())
    assert results[:2] == [True, False]
    assert isinstance(results[2], psycopg.errors.NotNullViolation)
    assert results[3] is True
    assert counted(LOG) == (batches + 1, rows + 4)
    assert {d.decision.event_id for d in store.get_many(["t1", "t2", "t3"])} == {"t1", "t2"}


def test_a_dropped_connection_fails_its_batch_and_the_next_one_reconnects(store: Store) -> None:
    async def scenario() -> tuple[int, int]:
        assert await store.insert_decision_async(decision("before")) is True
        dropped = _connection(store).info.backend_pid
        async with await store.connect_async() as admin:
            # Waits (up to 5 s) until the backend is gone, so the next batch meets it closed.
            await admin.execute("SELECT pg_terminate_backend(%s, 5000)", [dropped])
        with pytest.raises(psycopg.OperationalError):
            await store.insert_decision_async(decision("lost"))
        assert await store.insert_decision_async(decision("after")) is True
        again = _connection(store).info.backend_pid
        await store.close_on_loop()
        return dropped, again

    dropped, again = asyncio.run(scenario())
    assert dropped != again
    assert {d.decision.event_id for d in store.get_many(["before", "lost", "after"])} == {
        "before",
        "after",
    }


def test_two_loops_each_write_on_their_own_connection(store: Store) -> None:
    """A store used by two loops at once (the api's, and a `TestClient`'s in a thread): each
    loop batches on its own connection, and every decision is logged once."""
    both = threading.Barrier(2, timeout=30)
    pids: dict[str, int] = {}

    def loop(name: str) -> None:
        async def log() -> None:
            both.wait()  # the two loops write at the same time
            ids = [f"{name}{i}" for i in range(16)]
            answers = await asyncio.gather(*(store.insert_decision_async(decision(e)) for e in ids))
            assert answers == [True] * 16
            pids[name] = _connection(store).info.backend_pid
            await store.close_on_loop()

        asyncio.run(log())

    threads = [threading.Thread(target=loop, args=(name,)) for name in ("x", "y")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(set(pids.values())) == 2
    ids = [f"{name}{i}" for name in "xy" for i in range(16)]
    assert {d.decision.event_id for d in store.get_many(ids)} == set(ids)


def test_a_cancelled_caller_s_row_in_a_batch_is_committed_all_the_same(store: Store) -> None:
    """A request cancelled while its row is in flight (a client gone) gets no answer, and its
    row is committed: the batch is the loop's task, not the caller's."""
    on_loop = _on_loop(store)
    asyncio.run(cancelled_in_flight(on_loop, lambda: store.insert_decision_async(decision("gone"))))
    assert [d.decision.event_id for d in store.get_many(["gone"])] == ["gone"]


def test_close_waits_for_the_batch_then_closes_the_connection(store: Store) -> None:
    async def scenario() -> tuple[psycopg.AsyncConnection[Any], bool]:
        writes = [
            asyncio.ensure_future(store.insert_decision_async(decision(f"c{i}"))) for i in range(8)
        ]
        await asyncio.sleep(0)  # the writes are queued
        first = await writes[0]
        connection = _connection(store)
        await store.close_on_loop()
        assert all(write.done() for write in writes)
        return connection, first

    connection, first = asyncio.run(scenario())
    assert first is True and connection.closed
    assert len(store.get_many([f"c{i}" for i in range(8)])) == 8
