"""`People.moment` reads a person's profile, newest signals, recent choices and integration
statuses in one go, on both backends (SQLite: statements compiled once on the sqlite3
connection; PostgreSQL: one pipelined round trip), answering exactly what the one-by-one reads
through SQLAlchemy answer; `Integrations.gather` then asks the database nothing more."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from api.integration_setup import make_integrations
from bandit.store import Store
from integrations.profiles import People, Profile, integration_tokens
from integrations.signals import Signal
from tests.bandit.test_group_commit import decision
from tests.conftest import Backend

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    db = Store.connect(backend.database_url, pool_size=2)
    yield db
    db.engine.dispose()


def _token(store: Store, principal: str, provider: str, status: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(
            integration_tokens.insert().values(
                principal=principal,
                provider=provider,
                ciphertext=b"sealed",
                key_id="k1",
                status=status,
                updated_at=NOW,
            )
        )


def _moment(people: People, principal: str) -> dict[str, str]:
    since = NOW - timedelta(hours=1)
    *_, statuses = people.moment(principal, "tips", signals_since=since, recent_since=since)
    return statuses


def test_moment_carries_each_providers_token_status(store: Store) -> None:
    _token(store, "ada", "todoist", "connected")
    _token(store, "ada", "google-calendar", "needs_reconnect")
    _token(store, "bob", "todoist", "connected")
    people = People(store)

    assert _moment(people, "ada") == {"todoist": "connected", "google-calendar": "needs_reconnect"}
    assert _moment(people, "bob") == {"todoist": "connected"}
    assert _moment(people, "cy") == {}
    assert people.connections("ada") == _moment(people, "ada")


def test_gather_with_statuses_does_not_read_them_again(
    store: Store, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    integrations = make_integrations(backend.settings(), store.engine)
    try:

        def no_read(person: str) -> list[object]:
            raise AssertionError("gather read the statuses although it was given them")

        monkeypatch.setattr(integrations, "_rows", no_read)
        gathered = integrations.gather("cy", NOW, ZoneInfo("UTC"), statuses={})
        assert gathered.tasks == () and gathered.missing == ()
        # A provider that needs reconnecting is reported missing, without asking it anything.
        gathered = integrations.gather(
            "ada", NOW, ZoneInfo("UTC"), statuses={"todoist": "needs_reconnect"}
        )
        assert gathered.missing == ("todoist",)
    finally:
        integrations.close()


def test_moment_answers_what_the_one_by_one_reads_answer(store: Store) -> None:
    people = People(store)
    people.save_profile(
        Profile("ada", "Europe/Zurich", "22:30", "07:15", ("sleep", "focus"), ("advice",))
    )
    since = NOW - timedelta(hours=6)
    for kind, value, hours_ago in [
        ("mood", 2.0, 7),  # before `since`: not read
        ("mood", 4.0, 3),
        ("mood", 5.0, 1),  # the newest mood
        ("energy", 1.5, 2),
        ("todoist.task_done", 1.0, 5),
    ]:
        at = NOW - timedelta(hours=hours_ago)
        people.signals.add("ada", Signal(type=kind, value=value, occurred_at=at), at)
    people.signals.add("bob", Signal(type="mood", value=1.0, occurred_at=NOW), NOW)
    for event_id, principal, surface, action, hours_ago in [
        ("d1", "ada", "tips", 0, 5),
        ("d2", "ada", "tips", 0, 2),  # the same action chosen again: the later time counts
        ("d3", "ada", "tips", 1, 4),
        ("d4", "ada", "tips", 1, 9),  # before `since`
        ("d5", "ada", "personalizer", 1, 1),  # another surface
        ("d6", "bob", "tips", 0, 1),  # another person
    ]:
        at = NOW - timedelta(hours=hours_ago)
        logged = decision(event_id)
        store.insert_decision(
            replace(
                logged,
                principal=principal,
                surface=surface,
                chosen_index=action,
                created_at=at,
                activated_at=at,
            )
        )
    _token(store, "ada", "todoist", "connected")

    profile, latest, recent, statuses = people.moment(
        "ada", "tips", signals_since=since, recent_since=since
    )
    assert profile == people.profile("ada")
    assert profile.quiet_start == "22:30" and profile.interests == ("sleep", "focus")
    assert latest == people.latest_signals("ada", since)
    assert {kind: signal.value for kind, signal in latest.items()} == {
        "mood": 5.0,
        "energy": 1.5,
        "todoist.task_done": 1.0,
    }
    assert latest["mood"].occurred_at == NOW - timedelta(hours=1)
    assert latest["mood"].occurred_at.tzinfo is not None
    assert recent == store.recent_choices("ada", "tips", since)
    actions = decision("x").actions
    assert recent == {
        actions[0].id: NOW - timedelta(hours=2),
        actions[1].id: NOW - timedelta(hours=4),
    }
    assert statuses == people.connections("ada") == {"todoist": "connected"}
    # Someone who never saved anything reads the defaults.
    assert people.moment("cy", "tips", signals_since=since, recent_since=since) == (
        Profile("cy"),
        {},
        {},
        {},
    )
