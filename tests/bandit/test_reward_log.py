"""The reward log (ADR 0021): rewards group-committed, each checked against its decision's owner,
lateness and earlier reward in the statement that records it, on both backends.

The oracle is the rule as `record_reward` states it, written out by hand case by case: the
first reward counts; a repeat answers with it, or adds to it under "sum" while neither is late;
late means activated longer ago than the window, or already learned.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from bandit.events import utcnow
from bandit.store import Learned, RewardOutcome, Store
from bandit.store.reward_log import RewardClaim
from tests.bandit.test_group_commit import decision
from tests.conftest import Backend

WINDOW = timedelta(minutes=10)
OWNER = ("ann", "tips")


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    db = Store.connect(backend.database_url, pool_size=4)
    yield db
    db.engine.dispose()


def logged(store: Store, event_id: str, **changes: object) -> None:
    """A decision of ann's on tips, activated now unless `changes` say otherwise."""
    fresh = replace(decision(event_id), principal="ann", surface="tips")
    assert store.insert_decision(replace(fresh, **changes))  # type: ignore[arg-type]


def claim(event_id: str, value: float, **changes: object) -> RewardClaim:
    base = RewardClaim(event_id, value, "done", utcnow(), WINDOW, False, OWNER)
    return replace(base, **changes)  # type: ignore[arg-type]


def stored(store: Store, event_id: str) -> tuple[float | None, str | None, bool]:
    found = store.get(event_id)
    assert found is not None
    return found.reward, found.reaction, found.reward_late


def test_the_first_reward_counts_and_a_repeat_answers_with_it(store: Store) -> None:
    logged(store, "e1")
    first = store.record_reward("e1", 1.0, reaction="done", window=WINDOW, owner=OWNER)
    again = store.record_reward("e1", -1.0, reaction="dismiss", window=WINDOW, owner=OWNER)

    assert first == RewardOutcome(True, 1.0, "done", False)
    assert again == RewardOutcome(False, 1.0, "done", False)
    assert stored(store, "e1") == (1.0, "done", False)


def test_only_the_owner_records_and_an_unknown_event_is_none(store: Store) -> None:
    logged(store, "e1")
    for owner in (("bob", "tips"), ("ann", "personalizer")):
        assert store.record_reward("e1", 1.0, reaction="done", window=WINDOW, owner=owner) is None
    assert store.record_reward("nope", 1.0, reaction="done", window=WINDOW, owner=OWNER) is None
    assert stored(store, "e1") == (None, None, False)

    # Without an owner (the timing surface, the learner's tools) any decision is recorded.
    outcome = store.record_reward("e1", 0.5, reaction=None, window=WINDOW)
    assert outcome == RewardOutcome(True, 0.5, None, False)
    # Someone else's repeat learns nothing of the first reward either.
    assert (
        store.record_reward("e1", 1.0, reaction="x", window=WINDOW, owner=("bob", "tips")) is None
    )


def test_late_is_after_the_window_of_an_activation_or_once_learned(store: Store) -> None:
    now = utcnow()
    logged(store, "in-window", activated_at=now - WINDOW + timedelta(seconds=1))
    logged(store, "past-window", activated_at=now - WINDOW - timedelta(seconds=1))
    logged(store, "deferred", activated_at=None, created_at=now - 100 * WINDOW)
    logged(store, "learned")
    store.mark_learned([Learned("learned", 1, 0.0)])

    late = {
        event_id: store.record_reward(event_id, 1.0, reaction="done", window=WINDOW, at=now)
        for event_id in ("in-window", "past-window", "deferred", "learned")
    }

    assert {k: (v.created, v.late) for k, v in late.items() if v} == {
        "in-window": (True, False),
        "past-window": (True, True),
        "deferred": (True, False),
        "learned": (True, True),
    }
    assert stored(store, "past-window") == (1.0, "done", True)


def test_sum_adds_on_time_repeats_and_nothing_late(store: Store) -> None:
    now = utcnow()
    logged(store, "e1", activated_at=now)
    record = store.record_reward

    assert record("e1", 0.25, reaction=None, window=WINDOW, at=now, aggregation="sum").created
    assert record("e1", 0.5, reaction=None, window=WINDOW, at=now, aggregation="sum") == (
        RewardOutcome(False, 0.75, None, False)
    )
    # Past the window the repeat is late: the sum so far stands.
    after = now + WINDOW + timedelta(seconds=1)
    assert record("e1", 0.5, reaction=None, window=WINDOW, at=after, aggregation="sum") == (
        RewardOutcome(False, 0.75, None, False)
    )
    # "earliest" never adds.
    assert record("e1", 0.5, reaction=None, window=WINDOW, at=now) == (
        RewardOutcome(False, 0.75, None, False)
    )
    assert stored(store, "e1") == (0.75, None, False)

    # A first reward that was late is never added to.
    logged(store, "e2", activated_at=now - 2 * WINDOW)
    assert record("e2", 0.25, reaction=None, window=WINDOW, at=now, aggregation="sum") == (
        RewardOutcome(True, 0.25, None, True)
    )
    assert record("e2", 0.5, reaction=None, window=WINDOW, at=now, aggregation="sum") == (
        RewardOutcome(False, 0.25, None, True)
    )


def test_one_batch_sees_its_own_first_reward(store: Store) -> None:
    logged(store, "e1")
    logged(store, "e2")

    results = store._commit_rewards(
        [
            claim("e2", 1.0),
            claim("e1", 0.5, summing=True),
            claim("e1", 0.25, summing=True),
            claim("e1", -1.0, reaction="dismiss"),
            claim("e2", 0.0, reaction="later"),
            claim("e3", 1.0),
        ]
    )

    assert results == [
        RewardOutcome(True, 1.0, "done", False),
        RewardOutcome(True, 0.5, "done", False),
        RewardOutcome(False, 0.75, "done", False),
        RewardOutcome(False, 0.75, "done", False),
        RewardOutcome(False, 1.0, "done", False),
        None,
    ]
    assert stored(store, "e1") == (0.75, "done", False)


def test_a_claim_the_database_refuses_fails_alone(store: Store) -> None:
    logged(store, "e1")
    logged(store, "e2")
    # PostgreSQL holds a reaction to its 32 characters; SQLite stores NaN as NULL, which the
    # value column refuses.
    bad = claim("e1", math.nan) if store.is_sqlite else claim("e1", 1.0, reaction="x" * 40)

    results = store._commit_rewards([bad, claim("e2", 1.0)])

    assert isinstance(results[0], Exception)
    assert results[1] == RewardOutcome(True, 1.0, "done", False)
    assert stored(store, "e1") == (None, None, False)


def test_concurrent_rewards_from_two_processes_count_once_each(backend: Backend) -> None:
    """Two stores (each its own engine: two api processes) record rewards for the same events
    from 16 threads, each its events in its own random order: every event has exactly one
    first reward, every repeat answers with it, and no batch fails (no deadlock)."""
    stores = [Store.connect(backend.database_url, pool_size=8) for _ in range(2)]
    events = [f"e{i}" for i in range(12)]
    for event_id in events:
        logged(stores[0], event_id)
    outcomes: list[tuple[str, float, RewardOutcome | None]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def send(worker: int) -> None:
        order = random.Random(worker).sample(events, len(events))
        for event_id in order:
            try:
                value = float(worker)
                got = stores[worker % 2].record_reward(
                    event_id, value, reaction="done", window=WINDOW, owner=OWNER
                )
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                continue
            with lock:
                outcomes.append((event_id, value, got))

    threads = [threading.Thread(target=send, args=(w,)) for w in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for db in stores:
        db.engine.dispose()

    assert errors == []
    assert len(outcomes) == 16 * len(events)
    check = Store.connect(backend.database_url, pool_size=1)
    for event_id in events:
        mine = [(value, got) for e, value, got in outcomes if e == event_id]
        firsts = [value for value, got in mine if got is not None and got.created]
        assert len(firsts) == 1, event_id
        assert all(got is not None and got.value == firsts[0] for _, got in mine)
        assert stored(check, event_id) == (firsts[0], "done", False)
    check.engine.dispose()


def test_the_async_record_answers_as_the_blocking_one(store: Store) -> None:
    logged(store, "e1")

    async def both() -> list[RewardOutcome | None]:
        first = store.record_reward_async("e1", 1.0, reaction="done", window=WINDOW, owner=OWNER)
        other = store.record_reward_async("e1", 0.0, reaction="later", window=WINDOW, owner=OWNER)
        return list(await asyncio.gather(first, other))

    assert asyncio.run(both()) == [
        RewardOutcome(True, 1.0, "done", False),
        RewardOutcome(False, 1.0, "done", False),
    ]


Record = Callable[[RewardClaim], Awaitable[RewardOutcome | None]]
"""How a test's claims reach the reward log: the writer thread's group commit, or the loop's."""


async def deadlocked(store: Store, record: Record) -> list[RewardOutcome | None]:
    """A real deadlock: another transaction holds z's first reward while a batch of a and z
    (`record`) records a, then waits on z; that transaction then waits on a. PostgreSQL
    rolls the batch back (its deadlock check comes first: the other's is set later), the
    other transaction commits, and the batch, retried claim by claim, answers with its
    rewards. What the batch answered."""
    logged(store, "r-a")
    logged(store, "r-z")
    insert = (
        "INSERT INTO rewards (event_id, value, reaction, received_at, late) "
        "VALUES (%s, 5.0, 'other', now(), false)"
    )
    async with await store.connect_async() as other, await store.connect_async() as admin:
        await other.execute("SET deadlock_timeout = '60s'")
        async with other.transaction():
            await other.execute(insert, ["r-z"])
            batch = asyncio.gather(record(claim("r-a", 1.0)), record(claim("r-z", 1.0)))
            await _until_blocked_by(admin, other.info.backend_pid)
            await other.execute(insert, ["r-a"])  # waits until the batch is rolled back
    return list(await batch)


async def _until_blocked_by(admin: psycopg.AsyncConnection[Any], pid: int) -> None:
    """Until a backend waits on a lock `pid` holds (`admin` in autocommit: the activity view
    is read once per transaction)."""
    blocked = "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
    while await (await admin.execute(blocked, [pid])).fetchone() == (0,):
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_a_batch_postgresql_rolls_back_is_retried_claim_by_claim(store: Store) -> None:
    answers = asyncio.run(deadlocked(store, store._reward_log.write_async))
    assert answers == [RewardOutcome(False, 5.0, "other", False)] * 2
