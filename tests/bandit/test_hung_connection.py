"""A hung (not broken) PostgreSQL connection on the event loop's batches (ADR 0025), on a real
PostgreSQL: the loop's connections carry the statement timeout and the pool's do not; a batch
blocked on a lock is cancelled, by the server or else by the loop, and commits nothing; a
partition that answers nothing fails its batch with `Unanswered` and the next batch connects
again; each outcome is asserted, never a duration."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from bandit.store import LoopCommit, Store, Unanswered
from bandit.store.rows import _row
from tests.bandit.test_group_commit import decision
from tests.blackhole import Blackhole
from tests.conftest import Backend

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

TIMEOUT = 0.2
"""The statement timeout of these tests, in seconds: short, so a blocked batch ends soon."""


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    store = Store.connect(backend.database_url, statement_timeout=TIMEOUT)
    yield store
    store.engine.dispose()


@contextmanager
def locked(store: Store, statement: str) -> Iterator[None]:
    """`statement`'s lock, held by another session until the block ends."""
    with store.engine.connect() as conn, conn.begin():
        conn.exec_driver_sql(statement)
        yield


def _logged(store: Store, *ids: str) -> set[str]:
    return {d.decision.event_id for d in store.get_many(list(ids))}


def test_the_loop_s_connections_carry_the_timeout_and_the_pool_s_do_not(store: Store) -> None:
    """The timeout is a startup option beside the URL's own (its search path is kept); the
    pool's connections, which serve the learner and evaluations too, stay unbounded outside a
    request's transaction."""

    async def shown() -> tuple[str, str]:
        async with await store.connect_async() as connection:
            timeout = await (await connection.execute("SHOW statement_timeout")).fetchone()
            path = await (await connection.execute("SHOW search_path")).fetchone()
        assert timeout is not None and path is not None
        return timeout[0], path[0]

    timeout, path = asyncio.run(shown())
    assert timeout == "200ms"
    with store.raw() as connection:
        assert connection.execute("SHOW search_path").fetchone()[0] == path
        assert connection.execute("SHOW statement_timeout").fetchone()[0] == "0"


def test_a_batch_blocked_on_a_lock_fails_and_commits_nothing(store: Store) -> None:
    async def scenario() -> None:
        assert await store.insert_decision_async(decision("before")) is True
        with (
            locked(store, "LOCK TABLE decisions IN ACCESS EXCLUSIVE MODE"),
            pytest.raises(psycopg.errors.QueryCanceled),
        ):
            await store.insert_decision_async(decision("blocked"))
        assert await store.insert_decision_async(decision("after")) is True
        await store.close_on_loop()

    asyncio.run(scenario())
    assert _logged(store, "before", "blocked", "after") == {"before", "after"}


def test_without_the_server_s_timeout_the_loop_cancels_the_statement_itself(
    backend: Backend,
) -> None:
    """Connections without a timeout of their own (the server does not give up) under a
    `LoopCommit` bounded all the same: the loop cancels the blocked statement through the
    server, so the batch fails with the server's cancel, nothing committed, and the connection
    serves the next batch."""
    unbounded = Store.connect(backend.database_url)
    on_loop: LoopCommit[dict[str, Any], bool] = LoopCommit(
        unbounded._commit_decisions_async,
        connect=unbounded.connect_async,
        otherwise=unbounded._decision_log,
        name="decision-log",
        statement_timeout=TIMEOUT,
    )

    async def scenario() -> None:
        assert await on_loop.write(_row(decision("before"))) is True
        with (
            locked(unbounded, "LOCK TABLE decisions IN ACCESS EXCLUSIVE MODE"),
            pytest.raises(psycopg.errors.QueryCanceled),
        ):
            await on_loop.write(_row(decision("blocked")))
        assert await on_loop.write(_row(decision("after"))) is True
        await on_loop.close()

    try:
        asyncio.run(scenario())
        assert _logged(unbounded, "before", "blocked", "after") == {"before", "after"}
    finally:
        unbounded.engine.dispose()


@pytest.fixture
def partitioned(backend: Backend) -> Iterator[tuple[Store, Blackhole]]:
    """A store whose connections all go through a `Blackhole` proxy to the test database."""
    url = sa.make_url(backend.database_url)
    assert url.host is not None
    proxy = Blackhole((url.host, url.port or 5432))
    through = url.set(host="127.0.0.1", port=proxy.port)
    store = Store.connect(through.render_as_string(hide_password=False), statement_timeout=TIMEOUT)
    yield store, proxy
    store.engine.dispose()
    proxy.close()


def test_a_partition_fails_its_batch_unanswered_and_the_next_connects_again(
    partitioned: tuple[Store, Blackhole],
) -> None:
    """The proxy stops forwarding with the decision log's connection open: the server never
    sees the batch's statement (so it cannot cancel it) nor the loop's cancel. The batch fails
    with `Unanswered`, a 503; once the network is back the next batch opens a new
    connection."""
    store, proxy = partitioned

    async def scenario() -> None:
        assert await store.insert_decision_async(decision("before")) is True
        proxy.cut()
        with pytest.raises(Unanswered, match="decision-log batch nor its cancel"):
            await store.insert_decision_async(decision("lost"))
        proxy.mend()
        assert await store.insert_decision_async(decision("after")) is True
        await store.close_on_loop()

    asyncio.run(scenario())
    # The proxy dropped the lost batch before the server: here it is known not to be logged.
    assert _logged(store, "before", "lost", "after") == {"before", "after"}
