"""`POST /v1/recommend`: one tip, its decision logged before the answer leaves, the frequency
cap, quiet hours, prefetch with deferred activation, and signals that change the context.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.services.surfaces import TIPS
from integrations import tip_decisions
from integrations.context import WEEKDAYS
from tests.api.decision_helpers import (
    assert_error,
    assert_pmf,
    logged,
    rank,
    recommend,
    row_counts,
    services,
    where_recommend_reads,
)
from tests.conftest import Backend


def _context(client: TestClient) -> dict[str, Any]:
    """The logged context of a fresh recommendation, its feature objects merged."""
    merged: dict[str, Any] = {}
    for obj in logged(client, recommend(client)["event_id"]).decision.context:
        merged.update(obj)
    return merged


def test_recommend_answers_one_tip_and_the_decision_is_already_logged(
    client: TestClient,
) -> None:
    answer = recommend(client)
    assert set(answer) == {
        "event_id",
        "tip",
        "probability",
        "policy",
        "model_version",
        "missing_sources",
    }
    tip = answer["tip"]
    assert set(tip) == {"id", "kind", "title", "body", "category", "effort_minutes"}
    assert tip["kind"] in ("advice", "todo")

    found = logged(client, answer["event_id"])
    decision = found.decision
    assert (decision.surface, decision.principal) == (TIPS, "local")
    assert len(decision.actions) >= 2
    assert_pmf(decision.pmf)
    assert decision.chosen.id == tip["id"]
    assert decision.propensity == answer["probability"]
    assert (decision.policy, decision.model_version) == (answer["policy"], answer["model_version"])
    assert decision.policy == "vw-squarecb-tuned"
    assert not found.deferred and decision.activated_at is not None
    ids = [a.id for a in decision.actions]
    assert len(set(ids)) == len(ids)
    for action in decision.actions:
        assert services(client).tips.tip(action.id) is not None
        features, history = action.features  # the tip, then the person's history with its kind
        assert features["tip"]["id"] == action.id
        assert {"kind", "category", "effort", "tag"} <= set(features["tip"])
        assert history["history"] == {  # a first decision: no history yet
            "rate": 0.5,
            "part_rate": 0.5,
            "seen": "none",
            "last_done": "never",
            "streak": "none",
            "dismissed": False,
        }

    context = {key for obj in decision.context for key in obj}
    assert {"clock", "mood", "energy"} <= context
    clock = next(obj["clock"] for obj in decision.context if "clock" in obj)
    assert set(clock) == {"part", "hour", "weekday", "weekend"}
    assert clock["part"] in ("morning", "afternoon", "evening", "night")
    assert clock["weekday"] in WEEKDAYS


def test_reactions_become_the_next_decisions_history_features(client: TestClient) -> None:
    first = recommend(client)
    category = first["tip"]["category"]
    reply = client.post("/v1/feedback", json={"event_id": first["event_id"], "reaction": "done"})
    assert reply.status_code == 200, reply.text
    later = logged(client, recommend(client)["event_id"]).decision

    # The next decision's candidates carry the history as the cache holds it (no query) ...
    now = later.created_at
    cache = services(client).history
    remembered = cache.get("local", now).features(now, UTC)
    assert remembered(category)["history"]["rate"] == 0.65  # (1 + 1) / (1 + 2), to 0.05
    assert remembered(category)["history"]["seen"] == "once"
    tips = services(client).tips
    for action, line in zip(later.actions, later.example[1:], strict=True):
        assert action.features[-1] == remembered(tips.category(action.id))
        assert "|history rate:" in line
    # ... which is what a process that starts now reads from the log, in one query.
    read = cache.load("local", now).features(now, UTC)
    for kind in {tips.category(a.id) for a in later.actions} | {category}:
        assert read(kind) == remembered(kind)


def test_a_tip_chosen_recently_is_not_a_candidate_again(client: TestClient) -> None:
    chosen: list[str] = []
    for _ in range(5):
        decision = logged(client, recommend(client)["event_id"]).decision
        assert not {a.id for a in decision.actions} & set(chosen)
        chosen.append(decision.chosen.id)
    assert len(set(chosen)) == len(chosen)


def test_the_reads_take_no_worker_thread_once_the_history_is_in_memory(
    client: TestClient, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ADR 0020: a few indexed reads of a local file cost less than the hop to a worker thread,
    # PostgreSQL's reads join one thread's batch; a history loaded from the log takes a thread.
    seen = where_recommend_reads(client, monkeypatch)
    first = recommend(client)
    assert seen == ["read@thread", "waiting@thread", "gather@thread"]
    seen.clear()
    second = recommend(client)
    where = "loop" if backend.name == "embedded" else "batch"
    assert seen == [f"read@{where}", f"waiting@{where}", "gather@loop"]
    # Either way the decision is the same kind: logged, with the history the first one left.
    assert logged(client, second["event_id"]).decision.chosen.id == second["tip"]["id"]
    assert first["event_id"] != second["event_id"]


def test_a_person_with_many_decisions_in_the_cooldown_is_read_on_a_worker_thread(
    client: TestClient, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Their recent-choices read visits one row per decision within the cooldown: past a bound
    # (MAX_EVENTS, 200; 3 here) it would hold up every request on the loop, so it takes a thread.
    monkeypatch.setattr(tip_decisions, "MAX_EVENTS", 3)
    seen = where_recommend_reads(client, monkeypatch)
    for _ in range(5):
        recommend(client)
    reads = [step for step in seen if step.startswith("read@")]
    quick = "read@loop" if backend.name == "embedded" else "read@batch"
    assert reads == ["read@thread", quick, quick, "read@thread", "read@thread"]


def test_quiet_hours_answer_204_with_the_time_of_the_next_tip(client: TestClient) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    start, end = now - timedelta(hours=1), now + timedelta(hours=1)
    quiet = {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}"}
    profile = client.patch("/v1/me", json={"timezone": "UTC", "quiet_hours": quiet})
    assert profile.status_code == 200, profile.text
    assert profile.json()["quiet_hours"] == quiet
    before = row_counts(client)

    asked = datetime.now(UTC)
    reply = client.post("/v1/recommend")
    answered = datetime.now(UTC)
    assert reply.status_code == 204
    assert reply.content == b""
    assert datetime.fromisoformat(reply.headers["X-Next-Tip-At"]) == end
    # Seconds until the quiet hours end, rounded up, from the moment the api decided (which lies
    # between asking and the answer, however long that took).
    wait = int(reply.headers["Retry-After"])
    assert math.ceil((end - answered).total_seconds()) <= wait
    assert wait <= math.ceil((end - asked).total_seconds())
    assert row_counts(client) == before

    # The same hours read in another zone (UTC+05:30) do not cover this moment.
    assert client.patch("/v1/me", json={"timezone": "Asia/Kolkata"}).status_code == 200
    recommend(client)
    assert client.patch("/v1/me", json={"timezone": "UTC"}).status_code == 200
    assert client.post("/v1/recommend").status_code == 204
    lifted = client.patch("/v1/me", json={"quiet_hours": None})
    assert lifted.json()["quiet_hours"] is None
    recommend(client)


def test_a_prefetched_tip_is_activated_when_shown(client: TestClient) -> None:
    event_id = recommend(client, defer_activation=True)["event_id"]
    waiting = logged(client, event_id)
    assert waiting.deferred and waiting.decision.activated_at is None

    assert client.post(f"/v1/decisions/{event_id}/activate").status_code == 204
    activated_at = logged(client, event_id).decision.activated_at
    assert activated_at is not None
    # The first activation wins: the reward window does not restart.
    assert client.post(f"/v1/decisions/{event_id}/activate").status_code == 204
    assert logged(client, event_id).decision.activated_at == activated_at

    assert_error(
        client.post("/v1/decisions/no-such-event/activate"),
        404,
        "ResourceNotFound",
        target="event_id",
        match="no decision has event id 'no-such-event'",
    )
    personalizer_event = rank(client, {"actions": [{"id": "a"}], "deferActivation": True})
    assert_error(
        client.post(f"/v1/decisions/{personalizer_event['eventId']}/activate"),
        404,
        "ResourceNotFound",
        target="event_id",
    )
    assert logged(client, personalizer_event["eventId"]).decision.activated_at is None


def test_signals_change_the_context(client: TestClient) -> None:
    context = _context(client)
    assert (context["mood"], context["energy"]) == ({"level": "unknown"}, {"level": "unknown"})

    reply = client.post("/v1/signals", json={"type": "mood", "value": 5})
    assert reply.status_code == 202, reply.text
    accepted = reply.json()
    assert (accepted["type"], accepted["value"]) == ("mood", 5.0)
    occurred_at = datetime.fromisoformat(accepted["occurred_at"])
    assert occurred_at.tzinfo is not None
    assert _context(client)["mood"] == {"level": "high"}

    # A check-in from seven hours ago is past the freshness window: it changes nothing.
    stale = (datetime.now(UTC) - timedelta(hours=7)).isoformat()
    client.post("/v1/signals", json={"type": "mood", "value": 1, "occurred_at": stale})
    assert client.post("/v1/signals", json={"type": "energy", "value": 2}).status_code == 202
    context = _context(client)
    assert (context["mood"], context["energy"]) == ({"level": "high"}, {"level": "low"})
