"""Personal history as features: hand-computed buckets and rates, the candidates' lines, and the
per-person cache (no query when warm, one on a miss or past its TTL) on both backends."""

from __future__ import annotations

import json
import random
from collections import OrderedDict
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest
import sqlalchemy as sa

from bandit.events import Action, Decision
from bandit.features import line
from bandit.store import Store
from integrations.context import with_history
from integrations.history import HISTORY_DAYS, RECENT_DISMISS, History, HistoryCache, Past
from tests.conftest import Backend

NOW = datetime(2026, 11, 25, 9, 30, tzinfo=UTC)  # a Wednesday morning in UTC
UNSEEN = {
    "rate": 0.5,
    "part_rate": 0.5,
    "seen": "none",
    "last_done": "never",
    "streak": "none",
    "dismissed": False,
}


def _history(*events: tuple[timedelta, str, str | None]) -> History:
    """Events `(how long before NOW, category, reaction)`, oldest first."""
    ordered = sorted(events, key=lambda e: -e[0])
    return History(
        OrderedDict((f"e{i}", Past(NOW - ago, cat, r)) for i, (ago, cat, r) in enumerate(ordered))
    )


def test_a_category_never_reacted_to_gets_the_prior() -> None:
    features = _history((timedelta(hours=1), "movement", None)).features(NOW, UTC)
    assert features("movement")["history"] == UNSEEN
    assert features("sleep")["history"] == UNSEEN


def test_rates_buckets_and_streaks_by_hand() -> None:
    day = timedelta(days=1)
    history = _history(
        (timedelta(hours=1), "movement", "done"),  # today, morning
        (day + timedelta(hours=1), "movement", "useful"),  # yesterday, morning
        (2 * day + timedelta(hours=1), "movement", "done"),  # two days ago, morning
        (2 * day + timedelta(hours=8), "movement", "dismiss"),  # two days ago, night
        (4 * day, "movement", "later"),  # four days ago, morning
        (30 * day, "movement", "done"),  # older than the 28 days: not counted
        (5 * day, "sleep", "dismiss"),
        (timedelta(hours=2), "sleep", "dismiss"),
        (10 * day, "focus", "done"),
    )
    features = history.features(NOW, UTC)
    movement = features("movement")["history"]
    # 5 reactions, 3 positive: (3 + 1) / (5 + 2) = 0.571 -> 0.55; mornings: 4 and 3 -> 0.667 -> 0.65
    assert movement == {
        "rate": 0.55,
        "part_rate": 0.65,
        "seen": "many",
        "last_done": "today",
        "streak": "d2_3",
        "dismissed": True,
    }
    sleep = features("sleep")["history"]
    assert (sleep["rate"], sleep["seen"], sleep["dismissed"]) == (0.25, "few", True)
    assert (sleep["last_done"], sleep["streak"]) == ("never", "none")
    focus = features("focus")["history"]
    assert (focus["last_done"], focus["streak"], focus["dismissed"]) == ("weeks", "none", False)


def test_a_streak_may_end_yesterday_and_days_follow_the_persons_zone() -> None:
    history = _history(
        (timedelta(hours=11), "rest", "done"),  # 22:30 UTC yesterday
        (timedelta(days=1, hours=11), "rest", "done"),
    )
    assert history.features(NOW, UTC)("rest")["history"]["streak"] == "d2_3"
    assert history.features(NOW, UTC)("rest")["history"]["last_done"] == "days1_2"
    # In Auckland (UTC+13) 22:30 UTC yesterday is 11:30 today, and NOW is 22:30 today.
    auckland = history.features(NOW, ZoneInfo("Pacific/Auckland"))("rest")["history"]
    assert auckland["last_done"] == "today" and auckland["streak"] == "d2_3"


def test_only_the_first_reaction_counts_and_the_history_is_bounded() -> None:
    history = History()
    history.shown("a", NOW - timedelta(hours=1), "focus")
    history.reacted("a", "dismiss")
    history.reacted("a", "done")
    history.reacted("unknown", "done")
    assert history.features(NOW, UTC)("focus")["history"]["rate"] == 0.35  # 1 / 3
    for i in range(300):
        history.shown(f"x{i}", NOW, "focus")
    assert len(history) == 200
    assert history.features(NOW, UTC)("focus")["history"] == UNSEEN  # "a" was evicted


def test_features_kept_up_as_decisions_come_equal_features_counted_afresh() -> None:
    """`features` reads only the decisions reacted to, an index kept as decisions are shown,
    reacted to, shown again and evicted: it must equal a history built from the same events."""
    rng = random.Random(7)
    history = History()
    for step in range(2_000):
        event_id = f"e{rng.randrange(260)}"
        at = NOW - timedelta(hours=rng.randrange(24 * 30))
        if rng.random() < 0.6:
            history.shown(event_id, at, rng.choice(["focus", "rest", "move"]))
        else:
            history.reacted(event_id, rng.choice(["done", "useful", "dismiss", "not_now"]))
        if step % 100 == 0:
            events = OrderedDict(
                (e, Past(p.at, p.category, p.reaction)) for e, p in history._events.items()
            )
            afresh, kept = History(events).features(NOW, UTC), history.features(NOW, UTC)
            for category in ("focus", "rest", "move"):
                assert kept(category) == afresh(category)


def test_features_kept_between_moments_equal_features_counted_afresh() -> None:
    """`features` keeps its last answer until a reaction leaves its window (28 days, or 3
    for a recent dismissal), the day or part of day turns, the zone differs or the clock goes
    back: at every moment, as now moves by minutes to hours across those edges and reactions
    come in, it must equal a history counted afresh from the same events."""
    rng = random.Random(11)
    history, now = History(), NOW
    zones = [UTC, UTC, UTC, ZoneInfo("America/New_York")]
    # Reactions a few minutes either side of the windows' edges, so steps cross them often.
    edges = [timedelta(days=HISTORY_DAYS), RECENT_DISMISS]
    for step in range(3_000):
        draw = rng.random()
        if draw < 0.2:
            event_id = f"e{step}"
            ago = rng.choice(edges) + timedelta(minutes=rng.randrange(-90, 30))
            history.shown(event_id, now - ago, rng.choice(["focus", "rest"]))
            history.reacted(event_id, rng.choice(["done", "dismiss", "dismiss", "not_now"]))
        elif draw < 0.25:  # shown again under its event id: its reaction no longer counts
            history.shown(f"e{rng.randrange(step + 1)}", now, "rest")
        now += timedelta(minutes=rng.choice([1, 7, 40, 150]) * (-1 if rng.random() < 0.05 else 1))
        zone = rng.choice(zones)
        events = OrderedDict(
            (e, Past(p.at, p.category, p.reaction)) for e, p in history._events.items()
        )
        afresh, kept = History(events).features(now, zone), history.features(now, zone)
        for category in ("focus", "rest", "move"):
            assert kept(category) == afresh(category), (step, now, zone, category)


def test_with_history_adds_one_namespace_to_every_candidate() -> None:
    actions = [
        Action("t1", [{"tip": {"category": "focus"}}]),
        Action("t2", [{"tip": {"category": "sleep"}}]),
        Action("todoist:9", [{"todo": {"priority": "p1"}}]),
    ]
    lines = [line(a.features) for a in actions]
    categories = {"t1": "focus", "t2": "sleep", "todoist:9": "todoist"}
    rates = {"focus": 0.8, "sleep": 0.2, "todoist": 0.5}
    got = with_history(
        actions, lines, lambda c: {"history": {"rate": rates[c]}}, categories.__getitem__
    )
    assert [a.features[-1] for a in got.actions] == [
        {"history": {"rate": 0.8}},
        {"history": {"rate": 0.2}},
        {"history": {"rate": 0.5}},
    ]
    assert got.lines == [
        "|tip category=focus |history rate:0.8",
        "|tip category=sleep |history rate:0.2",
        "|todo priority=p1 |history rate:0.5",
    ]
    assert got.lines == [line(a.features) for a in got.actions]
    # Each joined candidate's log JSON is written once, as the decision log would write it.
    assert [json.loads(orjson.dumps(a.logged)) for a in got.actions] == [
        {"id": a.id, "features": a.features} for a in got.actions
    ]


def test_a_joined_candidate_is_remembered_only_for_the_same_features() -> None:
    """`with_history` remembers a catalog tip joined with a history part; a todo that keeps its
    id but changes (a new due date) is joined anew, and another history gets its own line."""
    tip = Action("t1", [{"tip": {"category": "focus"}}])
    todo = Action("todoist:9", [{"todo": {"due": "today"}}])
    categories = {"t1": "focus", "todoist:9": "todoist"}.__getitem__

    def joined(actions: list[Action], rate: float) -> Any:
        lines = [line(a.features) for a in actions]
        return with_history(actions, lines, lambda c: {"history": {"rate": rate}}, categories)

    first, again = joined([tip, todo], 0.8), joined([tip, todo], 0.8)
    assert again.actions[0] is first.actions[0]  # remembered
    assert again == first
    moved = Action("todoist:9", [{"todo": {"due": "tomorrow"}}])
    assert joined([tip, moved], 0.8).lines == [
        "|tip category=focus |history rate:0.8",
        "|todo due=tomorrow |history rate:0.8",
    ]
    assert joined([tip, moved], 0.8).actions[1].features[0] == {"todo": {"due": "tomorrow"}}
    assert joined([tip], 0.3).lines == ["|tip category=focus |history rate:0.3"]
    assert joined([tip], 0.3).actions[0].features[-1] == {"history": {"rate": 0.3}}


# --- the cache, on both backends -------------------------------------------------------------


@pytest.fixture
def store(backend: Backend) -> Iterator[Store]:
    opened = Store.connect(backend.database_url, pool_size=2)
    yield opened
    opened.engine.dispose()


def _decide(store: Store, event_id: str, principal: str, action: str, at: datetime) -> None:
    decision = Decision(
        event_id=event_id,
        surface="tips",
        principal=principal,
        context=[],
        actions=(Action(action), Action("other")),
        pmf=(0.9, 0.1),
        chosen_index=0,
        policy="vw-squarecb",
        model_key="tips:vw-squarecb",
        model_version=0,
        created_at=at,
        activated_at=at,
        example=("shared |_", "|_", "|_"),
    )
    assert store.insert_decision(decision)


def _queries(store: Store) -> list[str]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(args[2])

    sa.event.listen(store.engine, "before_cursor_execute", record)
    return seen


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_cache_reads_the_log_once_then_follows_decisions_and_reactions(store: Store) -> None:
    categories = {"tip-a": "focus", "tip-b": "sleep"}
    clock = Clock()
    cache = HistoryCache(store, "tips", categories.get, ttl=timedelta(minutes=10), clock=clock)
    _decide(store, "p1-old", "p1", "tip-a", NOW - timedelta(days=1))
    store.record_reward("p1-old", 1.0, reaction="done", window=timedelta(days=2), at=NOW)
    _decide(store, "p2-old", "p2", "tip-b", NOW - timedelta(days=1))  # someone else's
    _decide(store, "p1-ancient", "p1", "tip-b", NOW - timedelta(days=40))  # too old

    queries = _queries(store)
    assert cache.cached("p1") is None
    history = cache.get("p1", NOW)
    assert len(queries) == 1  # the miss: one query
    assert cache.cached("p1") is history and cache.cached("p2") is None
    focus = history.features(NOW, UTC)("focus")["history"]
    assert (focus["rate"], focus["last_done"]) == (0.65, "days1_2")
    assert history.features(NOW, UTC)("sleep")["history"] == UNSEEN

    # Warm: the next decision and its reaction update memory, and nothing is read.
    _decide(store, "p1-new", "p1", "tip-b", NOW)
    cache.shown("p1", "p1-new", NOW, "tip-b")
    cache.reacted("p1", "p1-new", "dismiss")
    queries.clear()
    sleep = cache.get("p1", NOW).features(NOW, UTC)("sleep")["history"]
    assert queries == []
    assert (sleep["rate"], sleep["dismissed"]) == (0.35, True)

    # Past the TTL the log is read again (another process may have written to it).
    clock.now = 601.0
    assert cache.cached("p1") is None
    store.record_reward("p1-new", -0.5, reaction="dismiss", window=timedelta(days=2), at=NOW)
    queries.clear()
    again = cache.get("p1", NOW).features(NOW, UTC)
    assert len(queries) == 1
    assert again("sleep") == cache.get("p1", NOW).features(NOW, UTC)("sleep")
    assert again("sleep")["history"]["dismissed"] is True

    cache.forget("p1")
    assert cache.cached("p1") is None
    queries.clear()
    cache.get("p1", NOW)
    assert len(queries) == 1


def test_since_counts_the_decisions_held_from_a_moment_on() -> None:
    history = History()
    assert history.since(NOW) == 0
    for hours in (30, 20, 10, 0):
        history.shown(f"e{hours}", NOW - timedelta(hours=hours), "focus")
    assert history.since(NOW) == 1
    assert history.since(NOW - timedelta(hours=20)) == 3
    assert history.since(NOW - timedelta(days=2)) == 4
