"""Recommend's reads on PostgreSQL, batched (ADR 0020): one pipeline of many people's reads
answers each person with their own moment and open waits, exactly what the one-by-one reads
answer; and a batch the database refuses fails every request in it."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from api.services.recommend_reads import RecommendReads
from integrations.profiles import Profile
from integrations.signals import Signal
from integrations.tip_decisions import Moment, Quiet
from notifier.timing_points import WAIT, points
from tests.api.decision_helpers import services
from tests.api.test_database_outage import database_down

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
