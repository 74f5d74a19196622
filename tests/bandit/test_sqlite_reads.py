"""`SqliteRead`: a SELECT compiled once and run on the pooled sqlite3 connection answers exactly
what the same statement answers through SQLAlchemy, values converted by the same types."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from bandit.events import utcnow
from bandit.store import SqliteRead, Store, sqlite_connection
from bandit.store.rows import _LOGGED, _logged, decisions
from tests.bandit.test_group_commit import decision
from tests.schema import migrated


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store.connect(migrated(f"sqlite:///{tmp_path / 'oo.sqlite3'}"))
    yield store
    store.engine.dispose()


def _fill(store: Store) -> None:
    now = utcnow()
    plain = decision("plain")
    store.insert_decision(plain)
    store.insert_decision(replace(decision("deferred"), activated_at=None))
    store.insert_decision(replace(decision("in-arm"), experiment="exp-1", arm="b"))
    store.insert_decision(replace(decision("rewarded"), created_at=now - timedelta(minutes=1)))
    store.record_reward("rewarded", 0.25, reaction="done", window=timedelta(minutes=10))
    store.insert_decision(replace(decision("late"), created_at=now - timedelta(hours=1)))
    store.record_reward("late", 1.0, reaction=None, window=timedelta(minutes=10))


@pytest.mark.parametrize("event_id", ["plain", "deferred", "in-arm", "rewarded", "late", "none"])
def test_a_logged_decision_reads_the_same_as_through_sqlalchemy(
    store: Store, event_id: str
) -> None:
    _fill(store)
    with store.autocommit.connect() as conn:
        row = conn.execute(_LOGGED.where(decisions.c.event_id == event_id)).first()
    expected = None if row is None else _logged(row)
    assert store.get(event_id) == expected
    if expected is not None:
        created = expected.decision.created_at
        assert created.tzinfo is not None and isinstance(expected.deferred, bool)


def test_literals_labels_and_aggregates_are_converted_like_sqlalchemy(store: Store) -> None:
    _fill(store)
    statement = (
        sa.select(
            decisions.c.surface.label("where"),
            sa.func.max(decisions.c.created_at),
            sa.func.count(),
            decisions.c.pmf,
        )
        .where(
            decisions.c.principal == sa.bindparam("principal"),
            decisions.c.deferred.is_(False),
            decisions.c.propensity > 0.1,  # a literal the statement holds itself
        )
        .group_by(decisions.c.surface, decisions.c.pmf)
        .limit(5)
    )
    read = SqliteRead(statement, store.engine.dialect)
    with sqlite_connection(store.engine) as connection:
        rows = read.rows(connection, principal="p")
    with store.autocommit.connect() as conn:
        expected = [tuple(row) for row in conn.execute(statement, {"principal": "p"})]
    assert [tuple(row) for row in rows] == expected
    (row,) = rows
    assert row.where == "personalizer" and row[2] == 4  # named by key; one decision deferred
    assert row.pmf == [0.5, 0.5]


def test_a_bound_time_compares_as_sqlalchemy_stores_it(store: Store) -> None:
    # SQLite compares times as text: a bound time must be written as the stored ones are (no
    # offset), or a row stored at exactly that time is left out of `>=`.
    at = utcnow().replace(microsecond=500_000)
    store.insert_decision(replace(decision("on-the-dot"), created_at=at))
    statement = sa.select(decisions.c.event_id).where(
        decisions.c.created_at >= sa.bindparam("since")
    )
    read = SqliteRead(statement, store.engine.dialect)
    with sqlite_connection(store.engine) as connection:
        assert [row.event_id for row in read.rows(connection, since=at)] == ["on-the-dot"]
        later = at + timedelta(microseconds=1)
        assert read.rows(connection, since=later) == []


def test_a_list_parameter_is_refused(store: Store) -> None:
    statement = sa.select(decisions.c.event_id).where(
        decisions.c.event_id.in_(sa.bindparam("ids", expanding=True))
    )
    with pytest.raises(ValueError, match="ids"):
        SqliteRead(statement, store.engine.dialect)


def test_read_connections_are_kept_apart_from_the_pool_and_closed_with_the_engine(
    store: Store,
) -> None:
    """`sqlite_connection` hands out connections from the engine's own free list: the same
    one again when it was given back, with the engine's pragmas, never one in a transaction,
    and none left open once the engine is disposed."""
    with sqlite_connection(store.engine) as first:
        assert first.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert first.execute("PRAGMA foreign_keys").fetchone() == (1,)
        with sqlite_connection(store.engine) as second:  # taken while the first is out
            assert second is not first
    with sqlite_connection(store.engine) as again:
        assert again in (first, second)
        again.execute("BEGIN")
        again.execute("DELETE FROM decisions")  # a writer holding the lock, not committed
    assert not again.in_transaction  # rolled back when given back
    store.insert_decision(decision("after"))  # so the write lock is free

    with sqlite_connection(store.engine) as in_use:
        store.engine.dispose()
        assert in_use.execute("SELECT 1").fetchone() == (1,)  # disposing spares one in use
    for connection in {first, second, in_use}:
        with pytest.raises(sqlite3.ProgrammingError, match="closed"):
            connection.execute("SELECT 1")
    with sqlite_connection(store.engine) as fresh:
        assert fresh.execute("SELECT count(*) FROM decisions").fetchone() == (1,)
