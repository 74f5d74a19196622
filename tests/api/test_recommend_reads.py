"""Recommend's reads on PostgreSQL, batched (ADR 0020) on the event loop (ADR 0024): one
pipeline of many people's reads answers each person with their own moment and open waits,
exactly what the one-by-one reads and the reads thread answer; a batch the database refuses
fails every request in it, a dropped connection fails one batch and the next reconnects, and
the app's shutdown closes the loop's connections."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from api.app import create_app
from api.services.recommend_reads import RecommendReads
from integrations.profiles import Profile
from integrations.signals import Signal
from integrations.tip_decisions import Moment, Quiet
from notifier.timing_points import WAIT, points
from tests.api.decision_helpers import services
from tests.api.test_database_outage import database_down
from tests.conftest import Backend, fast_learner

pytestmark = pytest.mark.parametrize("backend", ["postgres"], indirect=True)

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
PEOPLE = ["ann", "bob", "cy", "dee", "eve"]


@pytest.fixture
def seeded(make_client: Callable[..., TestClient]) -> tuple[TestClient, RecommendReads]:
    """An api on PostgreSQL with five people: profiles, signals, quiet hours, an open wait."""
    client = make_client()
    found = services(client)
    found.people.save_profile(Profile("ann", "Europe/Zurich", interests=("sleep",)))
    found.people.save_profile(Profile("bob", "America/New_York", kinds=("advice",)))
    # Quiet hours around noon in UTC: no tip for cy now.
    found.people.save_profile(Profile("cy", "UTC", "11:00", "13:00"))
    at = NOW - timedelta(minutes=30)
    found.people.signals.add("ann", Signal(type="mood", value=4.0, occurred_at=at), at)
    found.people.signals.add("dee", Signal(type="energy", value=2.0, occurred_at=at), at)
    with found.store.engine.begin() as conn:
        conn.execute(
            points.insert(),
            [
                {
                    "principal": "eve",
                    "slot_at": NOW - timedelta(minutes=10),
                    "local_day": "2026-11-25",
                    "event_id": "eve-wait",
                    "action": WAIT,
                    "decided_at": NOW - timedelta(minutes=10),
                    "visited_at": None,
                }
            ],
        )
    assert found.recommend_reads is not None
    return client, found.recommend_reads


def _alone(client: TestClient, person: str) -> tuple[Moment | Quiet, bool]:
    found = services(client)
    return found.tip_decisions.read(person, NOW), found.timing.waiting(person, NOW)


def _same(batched: tuple[Moment | Quiet, bool], alone: tuple[Moment | Quiet, bool]) -> None:
    (moment, waiting), (expected, expected_waiting) = batched, alone
    assert waiting == expected_waiting
    if isinstance(expected, Quiet):
        assert moment == expected
        return
    assert isinstance(moment, Moment)
    assert (moment.person, moment.profile, moment.signals, moment.recent, moment.statuses) == (
        expected.person,
        expected.profile,
        expected.signals,
        expected.recent,
        expected.statuses,
    )


def test_one_pipeline_answers_each_person_their_own_reads(
    seeded: tuple[TestClient, RecommendReads],
) -> None:
    client, reads = seeded
    batched = reads._read([(person, NOW) for person in PEOPLE])

    for person, answer in zip(PEOPLE, batched, strict=True):
        _same(answer, _alone(client, person))
    moments = dict(zip(PEOPLE, (moment for moment, _ in batched), strict=True))
    assert isinstance(moments["cy"], Quiet)
    assert [person for person, (_, waiting) in zip(PEOPLE, batched, strict=True) if waiting] == [
        "eve"
    ]
    ann, bob = moments["ann"], moments["bob"]
    assert isinstance(ann, Moment) and isinstance(bob, Moment)
    assert ann.profile.timezone == "Europe/Zurich" and set(ann.signals) == {"mood"}
    assert bob.profile.kinds == ("advice",) and bob.signals == {}


def test_concurrent_reads_are_answered_from_their_batches(
    seeded: tuple[TestClient, RecommendReads],
) -> None:
    client, reads = seeded

    async def all_at_once() -> list[tuple[Moment | Quiet, bool]]:
        return await asyncio.gather(*(reads.read(person, NOW) for person in PEOPLE * 4))

    answers = asyncio.run(all_at_once())
    for person, answer in zip(PEOPLE * 4, answers, strict=True):
        _same(answer, _alone(client, person))


def test_a_batch_the_database_refuses_fails_every_read_in_it(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client()
    reads = services(client).recommend_reads
    assert reads is not None

    async def all_at_once() -> list[object]:
        return await asyncio.gather(
            *(reads.read(person, NOW) for person in PEOPLE), return_exceptions=True
        )

    with database_down():
        failures = asyncio.run(all_at_once())
    assert all(isinstance(failure, psycopg.OperationalError) for failure in failures), failures


def _batches() -> tuple[float, float]:
    """(batches, requests) the reads' batches counted so far."""
    labels = {"log": "recommend-reads"}
    count = REGISTRY.get_sample_value("oo_group_commit_rows_count", labels) or 0.0
    requests = REGISTRY.get_sample_value("oo_group_commit_rows_sum", labels) or 0.0
    return count, requests


def _connection(reads: RecommendReads) -> psycopg.AsyncConnection[Any]:
    """The running loop's connection for reads (open once a batch was read)."""
    here = reads._on_loop._here(asyncio.get_running_loop())
    assert here is not None and here.connection is not None
    return here.connection


def test_reads_awaited_at_once_share_one_round_trip_on_the_loop(
    seeded: tuple[TestClient, RecommendReads],
) -> None:
    """The 20 reads of one `gather` all queue before the loop's batch task first runs: one
    pipeline answers them, counted in `oo_group_commit_rows`."""
    _, reads = seeded

    async def all_at_once() -> list[tuple[Moment | Quiet, bool]]:
        answers = await asyncio.gather(*(reads.read(person, NOW) for person in PEOPLE * 4))
        await reads.close()
        return list(answers)

    batches, requests = _batches()
    asyncio.run(all_at_once())
    assert _batches() == (batches + 1, requests + 20)


@pytest.mark.parametrize("seed", range(4))
def test_the_loop_reads_what_the_reads_thread_reads(
    seeded: tuple[TestClient, RecommendReads], seed: int
) -> None:
    """Seeded batches of people (some unknown) at moments around NOW (in and out of cy's quiet
    hours, eve's wait in and out of its window): the loop's pipeline answers each request as
    the thread's pipeline does."""
    _, reads = seeded
    rng = random.Random(seed)
    requests = [
        (rng.choice([*PEOPLE, "nobody"]), NOW + timedelta(minutes=rng.randint(-90, 90)))
        for _ in range(rng.randint(1, 24))
    ]

    async def on_the_loop() -> list[tuple[Moment | Quiet, bool]]:
        answers = await asyncio.gather(*(reads.read(person, now) for person, now in requests))
        await reads.close()
        return list(answers)

    for on_loop, threaded in zip(asyncio.run(on_the_loop()), reads._read(requests), strict=True):
        _same(on_loop, threaded)


def test_a_dropped_connection_fails_its_batch_and_the_next_one_reconnects(
    seeded: tuple[TestClient, RecommendReads],
) -> None:
    client, reads = seeded

    async def scenario() -> tuple[int, int, tuple[Moment | Quiet, bool]]:
        await reads.read("ann", NOW)
        dropped = _connection(reads).info.backend_pid
        async with await services(client).store.connect_async() as admin:
            # Waits (up to 5 s) until the backend is gone, so the next batch meets it closed.
            await admin.execute("SELECT pg_terminate_backend(%s, 5000)", [dropped])
        with pytest.raises(psycopg.OperationalError):
            await reads.read("ann", NOW)
        answer = await reads.read("ann", NOW)
        again = _connection(reads).info.backend_pid
        await reads.close()
        return dropped, again, answer

    dropped, again, answer = asyncio.run(scenario())
    assert dropped != again
    _same(answer, _alone(client, "ann"))


def test_the_app_s_shutdown_closes_its_loop_s_connections(backend: Backend) -> None:
    """Recommend's reads, the decision log and the reward log each hold a connection on the
    app's loop (the second recommend reads on the loop: the first loads the history on a
    thread); the lifespan's shutdown closes all three."""
    client = TestClient(create_app(backend.settings(), fast_learner()))
    with client:
        found = services(client)
        assert client.post("/v1/recommend").status_code == 200
        event_id = client.post("/v1/recommend").json()["event_id"]
        feedback = {"event_id": event_id, "reaction": "done"}
        assert client.post("/v1/feedback", json=feedback).status_code == 200
        assert found.recommend_reads is not None
        on_loops = (
            found.recommend_reads._on_loop,
            found.store._decision_log_on_loop,
            found.store._reward_log_on_loop,
        )
        connections = [
            here.connection
            for on_loop in on_loops
            if on_loop is not None
            for here in on_loop._loops.values()
        ]
        assert len(connections) == 3 and all(c is not None and not c.closed for c in connections)
    assert all(c is not None and c.closed for c in connections)
