"""The reward log group-committed on the event loop (ADR 0024's amendment), on a real
PostgreSQL: the loop's coroutines share its batches on a connection of their own, each batch
answers what the writer thread's answers (first rewards, repeats, sums, late rewards, unknown
and someone else's event ids, a refused claim failing alone), a batch PostgreSQL rolled back is
retried claim by claim, a dropped connection fails one batch and the next reconnects, a reward
taken into a batch is committed though its caller was cancelled, and two processes recording
the same events at once never deadlock."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from bandit.store import Learned, LoopCommit, RewardOutcome, Store
from bandit.store.reward_log import Recorded, RewardClaim
from tests.bandit.test_group_commit import decision
from tests.bandit.test_loop_commit import (
    cancelled_in_flight,
    counted,
    loop_connection,
    thread_then_loop,
)
from tests.bandit.test_reward_log import deadlocked
from tests.conftest import Backend

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

LOG = "reward-log"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WINDOW = timedelta(minutes=10)
OWNER = ("ann", "tips")


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    store = Store.connect(backend.database_url)
    yield store
    store.engine.dispose()


def logged(store: Store, event_id: str, *, activated_at: datetime | None = NOW) -> None:
    """A decision of ann's on tips, activated at `activated_at` (deferred when None)."""
    fresh = replace(decision(event_id), principal="ann", surface="tips")
    assert store.insert_decision(replace(fresh, created_at=NOW, activated_at=activated_at))


def _on_loop(store: Store) -> LoopCommit[RewardClaim, Recorded]:
    on_loop = store._reward_log_on_loop
    assert on_loop is not None
    return on_loop


def _connection(store: Store) -> psycopg.AsyncConnection[Any]:
    """The running loop's connection for rewards."""
    return loop_connection(store._reward_log_on_loop)


def _reward(store: Store, event_id: str, value: float, **terms: Any) -> Any:
    """`record_reward_async` of ann's on tips, at NOW."""
    terms = {"reaction": "done", "window": WINDOW, "at": NOW, "owner": OWNER, **terms}
    return store.record_reward_async(event_id, value, **terms)


def test_coroutines_awaiting_at_once_share_one_batch_on_the_loop_s_own_connection(
    store: Store,
) -> None:
    """The 48 coroutines of one `gather` all queue before the loop's batch task first runs:
    one transaction holds them all, sent on the loop's connection for rewards (not the
    decisions' one), and counted in `oo_group_commit_rows` like the thread's batches."""
    ids = [f"r{i}" for i in range(16)]
    for event_id in ids:
        logged(store, event_id)

    async def reward_all() -> tuple[list[RewardOutcome | None], set[int]]:
        assert await store.insert_decision_async(decision("d"))
        answers = await asyncio.gather(
            *(_reward(store, e, float(n)) for n in range(3) for e in ids)
        )
        decisions = loop_connection(store._decision_log_on_loop)
        pids = {decisions.info.backend_pid, _connection(store).info.backend_pid}
        await store.close_on_loop()
        return list(answers), pids

    batches, rows = counted(LOG)
    answers, pids = asyncio.run(reward_all())
    assert len(pids) == 2
    assert (
        answers
        == [RewardOutcome(True, 0.0, "done", False)] * 16
        + [RewardOutcome(False, 0.0, "done", False)] * 32
    )
    assert counted(LOG) == (batches + 1, rows + 48)


def _claims(rng: random.Random, prefix: str) -> list[RewardClaim]:
    """A batch of reward claims drawn by `rng` on `prefix`'s decisions (`_decisions`): first
    rewards and repeats, "sum" and "earliest", on time and late, unknown and someone else's
    event ids, and now and then a claim the database refuses (a reaction over 32
    characters)."""
    claims = []
    for _ in range(rng.randint(1, 10)):
        claim = RewardClaim(
            event_id=f"{prefix}{rng.randint(0, 11)}",
            value=float(rng.randint(-2, 2)),
            reaction=rng.choice(["done", "dismiss", None]),
            at=NOW + timedelta(minutes=rng.choice([0, 5, 30])),
            window=WINDOW,
            summing=rng.random() < 0.5,
            owner=rng.choice([OWNER, OWNER, OWNER, None, ("bob", "tips")]),
        )
        if rng.random() < 0.08:
            claim = replace(claim, reaction="x" * 40)
        claims.append(claim)
    return claims


def _decisions(store: Store, prefix: str) -> None:
    """12 decisions: activated now (0-7), deferred (8), activated long ago (9), learned (10);
    11 is never logged."""
    for n in range(11):
        activated_at = None if n == 8 else NOW - 3 * WINDOW if n == 9 else NOW
        logged(store, f"{prefix}{n}", activated_at=activated_at)
    store.mark_learned([Learned(f"{prefix}10", 1, 0.0)])


@pytest.mark.parametrize("seed", range(6))
def test_the_loop_answers_each_batch_as_the_writer_thread_does(store: Store, seed: int) -> None:
    """The same seeded batches, committed once by the thread's `_commit_rewards` and once by
    the loop's `_commit_rewards_async` on other event ids: the same answers, claim for claim,
    and the same rewards stored."""
    _decisions(store, "t")
    _decisions(store, "a")
    threaded, looped = thread_then_loop(
        store, seed, 6, _claims, store._commit_rewards, store._commit_rewards_async
    )
    assert looped == threaded

    def rewards(prefix: str) -> dict[str, tuple[float | None, str | None, bool]]:
        found = store.get_many([f"{prefix}{n}" for n in range(12)])
        return {d.decision.event_id[1:]: (d.reward, d.reaction, d.reward_late) for d in found}

    assert rewards("a") == rewards("t")


def test_a_claim_the_database_refuses_fails_alone_in_a_loop_batch(store: Store) -> None:
    """Rewards queued together on the loop share a batch; the database refuses one of them
    (a reaction over its 32 characters), and only its caller sees the error."""
    logged(store, "e1")
    logged(store, "e2")

    async def together() -> list[object]:
        answers = await asyncio.gather(
            _reward(store, "e1", 1.0, reaction="x" * 40),
            _reward(store, "e2", 1.0),
            _reward(store, "e2", 0.5),
            _reward(store, "nope", 1.0),
            return_exceptions=True,
        )
        await store.close_on_loop()
        return list(answers)

    batches, rows = counted(LOG)
    results = asyncio.run(together())
    assert isinstance(results[0], psycopg.errors.StringDataRightTruncation)
    assert results[1:] == [
        RewardOutcome(True, 1.0, "done", False),
        RewardOutcome(False, 1.0, "done", False),
        None,
    ]
    assert counted(LOG) == (batches + 1, rows + 4)
    assert store.get("e1").reward is None  # type: ignore[union-attr]


def test_a_batch_postgresql_rolls_back_is_retried_claim_by_claim(store: Store) -> None:
    """The loop's batch meets a real deadlock (`deadlocked`): rolled back, then retried claim
    by claim, it answers both claims with the other transaction's rewards."""

    async def on_the_loop() -> list[RewardOutcome | None]:
        answers = await deadlocked(store, _on_loop(store).write)
        await store.close_on_loop()
        return answers

    assert asyncio.run(on_the_loop()) == [RewardOutcome(False, 5.0, "other", False)] * 2


def test_a_dropped_connection_fails_its_batch_and_the_next_one_reconnects(store: Store) -> None:
    for event_id in ("before", "lost", "after"):
        logged(store, event_id)

    async def scenario() -> tuple[int, int]:
        assert (await _reward(store, "before", 1.0)).created
        dropped = _connection(store).info.backend_pid
        async with await store.connect_async() as admin:
            # Waits (up to 5 s) until the backend is gone, so the next batch meets it closed.
            await admin.execute("SELECT pg_terminate_backend(%s, 5000)", [dropped])
        with pytest.raises(psycopg.OperationalError):
            await _reward(store, "lost", 1.0)
        assert (await _reward(store, "after", 1.0)).created
        again = _connection(store).info.backend_pid
        await store.close_on_loop()
        return dropped, again

    dropped, again = asyncio.run(scenario())
    assert dropped != again
    rewarded = {d.decision.event_id: d.reward for d in store.get_many(["before", "lost", "after"])}
    assert rewarded == {"before": 1.0, "lost": None, "after": 1.0}


def test_a_cancelled_caller_s_reward_in_a_batch_is_committed_all_the_same(store: Store) -> None:
    """A request cancelled while its reward is in flight (a client gone) gets no answer, and
    its reward is committed: the batch is the loop's task, not the caller's."""
    logged(store, "gone")
    asyncio.run(cancelled_in_flight(_on_loop(store), lambda: _reward(store, "gone", 1.0)))
    assert store.get("gone").reward == 1.0  # type: ignore[union-attr]


def test_close_waits_for_the_batch_then_closes_the_connection(store: Store) -> None:
    ids = [f"c{i}" for i in range(8)]
    for event_id in ids:
        logged(store, event_id)

    async def scenario() -> psycopg.AsyncConnection[Any]:
        rewards = [asyncio.ensure_future(_reward(store, e, 1.0)) for e in ids]
        await asyncio.sleep(0)  # the rewards are queued
        await rewards[0]
        connection = _connection(store)
        await store.close_on_loop()
        assert all(reward.done() for reward in rewards)
        return connection

    assert asyncio.run(scenario()).closed
    assert [d.reward for d in store.get_many(ids)] == [1.0] * 8


def test_two_processes_on_their_loops_reward_the_same_events_without_deadlock(
    backend: Backend,
) -> None:
    """Two stores (two api processes), each on a loop of its own, record rewards for the same
    24 events in batches of their own seeded random orders, at the same time: no batch fails
    (each takes its locks in event-id order), every event has exactly one first reward, and
    every repeat answers with it."""
    stores = [Store.connect(backend.database_url) for _ in range(2)]
    events = [f"e{i:02}" for i in range(24)]
    for event_id in events:
        logged(stores[0], event_id)
    both = threading.Barrier(2, timeout=30)
    outcomes: list[tuple[str, RewardOutcome | None]] = []

    def process(n: int) -> None:
        store, rng = stores[n], random.Random(n)

        async def send() -> None:
            both.wait()  # the two loops record at the same time
            for _ in range(8):
                batch = rng.sample(events, 12)
                answers = await asyncio.gather(*(_reward(store, e, float(n)) for e in batch))
                outcomes.extend(zip(batch, answers, strict=True))
            await store.close_on_loop()

        asyncio.run(send())

    threads = [threading.Thread(target=process, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for store in stores:
        store.engine.dispose()

    assert len(outcomes) == 2 * 8 * 12
    check = Store.connect(backend.database_url, pool_size=1)
    stored = {d.decision.event_id: d.reward for d in check.get_many(events)}
    check.engine.dispose()
    for event_id in {e for e, _ in outcomes}:
        mine = [got for e, got in outcomes if e == event_id]
        assert sum(got is not None and got.created for got in mine) == 1, event_id
        assert all(got is not None and got.value == stored[event_id] for got in mine)
