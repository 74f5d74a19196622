"""`People.moment` reads a person's profile, newest signals, recent choices and integration
statuses in one go, on both backends (SQLite: statements compiled once on the sqlite3
connection; PostgreSQL: one pipelined round trip), answering exactly what the one-by-one reads
through SQLAlchemy answer; `Integrations.gather` then asks the database nothing more."""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from api.integration_setup import make_integrations
from bandit.events import Action
from bandit.store import Store
from integrations.profiles import People, PersonMoment, Profile, integration_tokens
from integrations.signals import CONTEXT_LIMIT, Signal
from tests.bandit.test_group_commit import decision
from tests.conftest import Backend

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


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


ZONES = (UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)))
KINDS = ("mood", "energy", "habit_done", "fitness.steps")
ACTIONS = tuple(Action(f"tip-{i}", [{"item": {"id": f"tip-{i}"}}]) for i in range(6))


def _signal_value(rng: random.Random, kind: str) -> float:
    if kind in ("mood", "energy"):
        return rng.choice([1.0, 2.5, 5.0, 1 + rng.random() * 4])
    if kind == "habit_done":
        return rng.choice([0.0, 1.0])
    return rng.choice([0.1 + 0.2, -1e300, 5e-324, rng.uniform(-1e6, 1e6)])  # exact floats


def test_moment_answers_what_the_one_by_one_reads_answer_on_random_people(store: Store) -> None:
    """Seeded random people, with the edges: no profile, no signal, signals before
    `signals_since` or exactly at it, several of one type (at the same instant too), more than
    `CONTEXT_LIMIT` fresh ones, choices before the cooldown, on another surface or exactly at
    its start, no integration, and times in other zones than UTC.

    Of two signals of a type at the same instant the later stored wins, in the one statement
    and in the one-by-one reads alike, on both backends."""
    rng = random.Random(20261204)
    people = People(store)
    signals_since = (NOW - timedelta(hours=6)).astimezone(rng.choice(ZONES))
    recent_since = (NOW - timedelta(days=1)).astimezone(rng.choice(ZONES))
    oracle: dict[str, PersonMoment] = {}
    base = replace(decision("x"), actions=ACTIONS, pmf=(1 / len(ACTIONS),) * len(ACTIONS))
    for n in range(14):
        person = f"p{n}"
        profile = Profile(person)
        if rng.random() < 0.7:
            quiet = rng.choice([(None, None), ("22:00", "07:30")])
            profile = Profile(
                person,
                rng.choice(["UTC", "Europe/Zurich", "Asia/Kolkata"]),
                *quiet,
                tuple(rng.sample(["sleep", "focus", "move", "ünïcode"], rng.randint(0, 3))),
                tuple(rng.sample(["advice", "todo"], rng.randint(1, 2))),
            )
            people.save_profile(profile)
        # (occurred_at, insertion order, signal): newest first, a tie to the later insert.
        fresh: list[tuple[datetime, int, Signal]] = []
        times = [signals_since, signals_since - timedelta(microseconds=1)]
        count = CONTEXT_LIMIT + 30 if n == 3 else rng.choice([0, 1, 3, 8, 15])
        for order in range(count):
            kind = rng.choice(KINDS)
            if n == 3:  # the newest `CONTEXT_LIMIT` are moods: the older energy is not read
                kind = "mood" if order < CONTEXT_LIMIT else "energy"
                at = NOW - timedelta(minutes=order)
            elif times and rng.random() < 0.3:
                at = rng.choice(times)  # a tie with an earlier signal, or a window edge
            else:
                at = NOW - timedelta(minutes=rng.uniform(0, 9 * 60))
                times.append(at)
            at = at.astimezone(rng.choice(ZONES))
            signal = Signal(type=kind, value=_signal_value(rng, kind), occurred_at=at)
            people.signals.add(person, signal, NOW)
            if at >= signals_since:
                fresh.append((at, order, signal))
        fresh.sort(key=lambda found: (found[0], found[1]), reverse=True)
        latest: dict[str, Signal] = {}
        for _, _, signal in fresh[:CONTEXT_LIMIT]:
            latest.setdefault(signal.type, signal)
        recent: dict[str, datetime] = {}
        for number in range(rng.choice([0, 1, 5, 50])):
            surface = rng.choice(["tips", "tips", "tips", "personalizer"])
            at = rng.choice(
                [recent_since, NOW - timedelta(hours=rng.uniform(0, 30)), recent_since - DAY]
            ).astimezone(rng.choice(ZONES))
            chosen = rng.randrange(len(ACTIONS))
            store.insert_decision(
                replace(
                    base,
                    event_id=f"{person}-{number}",
                    principal=person,
                    surface=surface,
                    chosen_index=chosen,
                    created_at=at,
                    activated_at=at,
                )
            )
            action = ACTIONS[chosen].id
            if surface == "tips" and at >= recent_since and at > recent.get(action, at - DAY):
                recent[action] = at
        statuses: dict[str, str] = {}
        for provider in rng.sample(["todoist", "google-calendar"], rng.randint(0, 2)):
            statuses[provider] = rng.choice(["connected", "needs_reconnect"])
            _token(store, person, provider, statuses[provider])
        oracle[person] = (profile, latest, recent, statuses)

    for person, expected in [*oracle.items(), ("nobody", (Profile("nobody"), {}, {}, {}))]:
        found = people.moment(
            person, "tips", signals_since=signals_since, recent_since=recent_since
        )
        assert found == expected, person
        one_by_one = (
            people.profile(person),
            people.latest_signals(person, signals_since),
            store.recent_choices(person, "tips", recent_since),
            people.connections(person),
        )
        assert found == one_by_one, person
        _, latest, recent, _ = found
        times = [s.occurred_at for s in latest.values()] + list(recent.values())
        assert all(at.utcoffset() == timedelta(0) for at in times), person
