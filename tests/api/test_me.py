"""Signals, export and erasure of the person, on both backends.

The local single-user person is the principal here (`PersonDep`); other units in experiments
are logged straight into the store, as the tips surface would log them for other people.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from fastapi.testclient import TestClient

from bandit.events import utcnow
from bandit.store import Learned
from integrations.signal_stream import SIGNAL_STREAM, SignalWorker, make_signal_bus
from integrations.signals import Signal, SignalStore
from integrations.token_store import TokenStore
from integrations.vault import ProviderToken, Vault, new_key_entry, parse_keys
from tests.api.decision_helpers import learned, recommend, services
from tests.conftest import Backend, wait_until
from tests.rewards.synthetic import decisions

DEFAULT_PROFILE = {
    "timezone": "UTC",
    "quiet_hours": None,
    "interests": [],
    "kinds": ["advice", "todo"],
    "timing": {"every_minutes": 30, "pushes_per_day": 3},
}
SQL = "'); DROP TABLE signals; --"
SCRIPT = "<script>alert('signal')</script>"


def _section(export: dict[str, Any], name: str) -> Any:
    found = [s["data"] for s in export["sections"] if s["name"] == name]
    assert len(found) == 1, [s["name"] for s in export["sections"]]
    return found[0]


def _export(client: TestClient) -> dict[str, Any]:
    reply = client.get("/v1/me/export")
    assert reply.status_code == 200, reply.text
    assert reply.headers["content-type"] == "application/json"
    assert "attachment" in reply.headers["content-disposition"]
    body: dict[str, Any] = reply.json()
    return body


def _tokens(client: TestClient) -> TokenStore:
    vault = Vault(parse_keys(new_key_entry("t1")))
    return TokenStore(services(client).store.engine, vault)


# ------------------------------------------------------------------------------- signals


def test_signals_are_stored_published_and_consumed(client: TestClient, backend: Backend) -> None:
    worker = services(client).signal_worker
    assert worker is not None
    before = worker.consumed
    sent: list[dict[str, Any]] = [
        {"type": "mood", "value": 4, "source": "web"},
        {"type": "habit_done", "value": 1},
        {"type": "todoist.task_done", "value": 3, "source": "todoist"},
    ]
    for body in sent:
        reply = client.post("/v1/signals", json=body)
        assert reply.status_code == 202, reply.text
        answer = reply.json()
        assert set(answer) == {"type", "value", "occurred_at", "source"}
        assert (answer["type"], answer["value"]) == (body["type"], float(body["value"]))
        assert answer["source"] == body.get("source", "api")
    # The consumer in this process read every one of them off the stream.
    wait_until(lambda: worker.consumed >= before + len(sent))
    if backend.redis_url:
        entries = redis.Redis.from_url(backend.redis_url).xrange(SIGNAL_STREAM)
        assert [e[1][b"type"].decode() for e in entries] == [b["type"] for b in sent]
    latest = services(client).people.latest_signals("local", utcnow() - timedelta(hours=1))
    assert sorted(latest) == ["habit_done", "mood", "todoist.task_done"]
    assert latest["todoist.task_done"].source == "todoist"


def test_markup_and_sql_in_a_signal_stay_inert_text(client: TestClient) -> None:
    for source in (SQL, SCRIPT):
        reply = client.post(
            "/v1/signals", json={"type": "notes.mood", "value": 2, "source": source}
        )
        assert reply.status_code == 202, reply.text
        assert reply.headers["content-type"] == "application/json"
        assert reply.json()["source"] == source
    engine = services(client).store.engine
    with engine.connect() as conn:  # the table is still there, holding the text verbatim
        stored = conn.execute(sa.text("SELECT source FROM signals ORDER BY id")).scalars().all()
    assert stored == [SQL, SCRIPT]
    exported = _section(_export(client), "signals")
    assert [s["source"] for s in exported] == [SQL, SCRIPT]
    assert [s["type"] for s in exported] == ["notes.mood", "notes.mood"]


def test_a_signal_normalized_elsewhere_goes_through_the_same_ingest(client: TestClient) -> None:
    """What an integration does: build the contract model and hand it to `ingest`."""
    signal = Signal(type="calendar.busy_hours", value=2.5, source="google-calendar")
    stored = services(client).signals.ingest("local", signal)
    assert stored.id > 0
    exported = _section(_export(client), "signals")
    assert exported == [
        {
            "id": stored.id,
            "type": "calendar.busy_hours",
            "value": 2.5,
            "occurred_at": exported[0]["occurred_at"],
            "source": "google-calendar",
            "received_at": exported[0]["received_at"],
        }
    ]


# -------------------------------------------------------------------------------- export


def test_export_holds_profile_signals_decisions_and_integrations(client: TestClient) -> None:
    profile = {"timezone": "Europe/Paris", "interests": [SCRIPT], "kinds": ["advice"]}
    assert client.patch("/v1/me", json=profile).status_code == 200
    assert client.post("/v1/signals", json={"type": "energy", "value": 2}).status_code == 202
    tip = recommend(client)
    reaction = client.post("/v1/feedback", json={"event_id": tip["event_id"], "reaction": "done"})
    assert reaction.status_code == 200
    tokens = _tokens(client)
    secret = "todoist-access-token-0123456789"
    tokens.save("local", "todoist", ProviderToken(access_token=secret))
    services(client).personal_data.add_export_section(
        "sessions", "Sign-in sessions", lambda principal: [{"principal": principal}]
    )

    reply = client.get("/v1/me/export")
    assert secret not in reply.text
    export = _export(client)
    assert export["principal"] == "local"
    names = [s["name"] for s in export["sections"]]
    assert names == [
        "profile",
        "signals",
        "decisions",
        "integrations",
        "push_devices",
        "pushes",
        "timing",
        "sessions",
    ]
    assert all(s["description"] for s in export["sections"])
    assert _section(export, "profile") == {
        "timezone": "Europe/Paris",
        "quiet_hours": None,
        "interests": [SCRIPT],
        "kinds": ["advice"],
    }
    assert [(s["type"], s["value"]) for s in _section(export, "signals")] == [("energy", 2.0)]
    (decision,) = _section(export, "decisions")
    assert decision["event_id"] == tip["event_id"]
    assert decision["chosen"] == {"id": tip["tip"]["id"], "title": tip["tip"]["title"]}
    assert decision["probability"] == tip["probability"]
    probabilities = {c["id"]: c["probability"] for c in decision["candidates"]}
    assert probabilities[tip["tip"]["id"]] == tip["probability"]
    assert abs(sum(probabilities.values()) - 1.0) < 1e-6
    assert decision["reaction"]["reaction"] == "done"
    assert decision["reaction"]["reward"] == 1.0
    assert {"energy": {"level": "low"}} in decision["context"]
    (integration,) = _section(export, "integrations")
    assert integration["provider"] == "todoist"
    assert integration["status"] == "connected"
    assert set(integration) == {"provider", "status", "expires_at", "updated_at"}
    assert _section(export, "sessions") == [{"principal": "local"}]


# ------------------------------------------------------------------------------- erasure


def _seed_experiment(client: TestClient) -> None:
    """An experiment on tips with the local person and five others, every decision learned."""
    arms = [
        {"name": "control", "policy": "vw-epsilon", "weight": 1},
        {"name": "treatment", "policy": "random", "weight": 1},
    ]
    body = {
        "name": "erasure",
        "surface": "tips",
        "arms": arms,
        "min_units_per_arm": 2,
        "min_decisions_per_arm": 0,
    }
    assert client.post("/v1/experiments", json=body).status_code == 201
    assert client.post("/v1/experiments/erasure/start").status_code == 200
    store = services(client).store
    units = ["local", "u1", "u2", "u3", "u4", "u5"]
    marks = []
    start = utcnow() - timedelta(hours=1)
    log = decisions(240, seed=11, epsilon=0.4, surface="tips", model_key="tips:x", start=start)
    for i, (decision, reward) in enumerate(log):
        unit = units[i % len(units)]
        arm = "control" if unit in ("local", "u1", "u2") else "treatment"
        policy = "vw-epsilon" if arm == "control" else "random"
        store.insert_decision(
            dataclasses.replace(
                decision,
                principal=unit,
                experiment="erasure",
                arm=arm,
                policy=policy,
                model_key=f"tips:{policy}:erasure/{arm}",
                activated_at=None,  # the running learner leaves them alone
            )
        )
        store.record_reward(decision.event_id, reward, reaction=None, window=timedelta(hours=2))
        marks.append(Learned(decision.event_id, 2_000_000 + i, reward))
    store.mark_learned(marks)


def _evaluation(client: TestClient) -> dict[str, Any]:
    body = {"surface": "tips", "policies": ["baseline", "random", "vw-epsilon"]}
    job = client.post("/v1/evaluations", json=body)
    assert job.status_code == 201, job.text

    def finished() -> dict[str, Any] | None:
        found: dict[str, Any] = client.get(f"/v1/evaluations/{job.json()['id']}").json()
        return found if found["status"] not in ("queued", "running") else None

    done = wait_until(finished, timeout=60)
    assert done["status"] == "succeeded", done
    result: dict[str, Any] = done["result"]
    result.pop("seconds", None)
    return result


def _principals(client: TestClient) -> dict[str, int]:
    with services(client).store.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT principal, count(*) FROM decisions GROUP BY principal"))
        return {str(principal): int(count) for principal, count in rows}


def test_erasure_deletes_the_person_and_keeps_experiments_and_evaluations(
    client: TestClient,
) -> None:
    assert client.patch("/v1/me", json={"timezone": "Asia/Tokyo"}).status_code == 200
    assert client.post("/v1/signals", json={"type": "mood", "value": 1}).status_code == 202
    tip = recommend(client)
    client.post("/v1/feedback", json={"event_id": tip["event_id"], "reaction": "useful"})
    wait_until(lambda: learned(client, tip["event_id"]))
    tokens = _tokens(client)
    tokens.save("local", "todoist", ProviderToken(access_token="tok-local"))
    tokens.save("u1", "todoist", ProviderToken(access_token="tok-u1"))
    _seed_experiment(client)

    seen_by_hook: list[str] = []
    registry = services(client).personal_data
    people = services(client).people
    registry.add_erase_hook("witness", lambda p: seen_by_hook.append(people.profile(p).timezone))

    def provider_down(principal: str) -> None:
        raise ConnectionError("provider unreachable")

    registry.add_erase_hook("revoke-flaky", provider_down)

    results_before = client.get("/v1/experiments/erasure/results").json()
    assert [a["units"] for a in results_before["results"]["arms"]] == [3, 3]
    evaluation_before = _evaluation(client)
    assert evaluation_before["n"] == 241
    principals_before = _principals(client)

    reply = client.delete("/v1/me")
    assert (reply.status_code, reply.content) == (204, b"")

    # Tokens, signals and profile are gone; hooks ran while the data still existed.
    assert seen_by_hook == ["Asia/Tokyo"]
    assert tokens.load("local", "todoist") is None
    assert tokens.load("u1", "todoist") is not None
    assert client.get("/v1/me").json() == DEFAULT_PROFILE
    export = _export(client)
    for name in ("signals", "decisions", "integrations"):
        assert _section(export, name) == [], name
    profile = {k: v for k, v in DEFAULT_PROFILE.items() if k != "timing"}
    assert _section(export, "profile") == profile  # timing settings are their own section

    # Decisions: the person's became one pseudonym's; everyone else's are untouched.
    principals_after = _principals(client)
    assert "local" not in principals_after
    (pseudonym,) = set(principals_after) - set(principals_before)
    assert pseudonym.startswith("erased:") and "local" not in pseudonym
    assert principals_after[pseudonym] == principals_before["local"]
    assert {k: v for k, v in principals_after.items() if k != pseudonym} == {
        k: v for k, v in principals_before.items() if k != "local"
    }

    # The same numbers: experiment results and a counterfactual evaluation over the window.
    assert client.get("/v1/experiments/erasure/results").json() == results_before
    assert _evaluation(client) == evaluation_before

    # A second erasure finds nothing and changes nothing.
    assert client.delete("/v1/me").status_code == 204
    assert _principals(client) == principals_after


def test_erasure_of_a_fresh_person_answers_204(client: TestClient) -> None:
    assert client.delete("/v1/me").status_code == 204
    assert client.get("/v1/me").json() == DEFAULT_PROFILE
    export = _export(client)
    assert [s["name"] for s in export["sections"]] == [
        "profile",
        "signals",
        "decisions",
        "integrations",
        "push_devices",
        "pushes",
        "timing",
    ]
    assert _section(export, "push_devices") == []


def test_a_person_starts_afresh_after_erasure(client: TestClient) -> None:
    assert client.post("/v1/signals", json={"type": "mood", "value": 5}).status_code == 202
    assert client.delete("/v1/me").status_code == 204
    assert client.post("/v1/signals", json={"type": "energy", "value": 4}).status_code == 202
    signals = _section(_export(client), "signals")
    assert [s["type"] for s in signals] == ["energy"]


def test_registering_the_same_section_twice_is_refused(client: TestClient) -> None:
    registry = services(client).personal_data
    with pytest.raises(ValueError, match=r"^export section 'profile' is already registered$"):
        registry.add_export_section("profile", "again", lambda p: None)


def test_api_workers_publish_and_the_learner_consumes(
    make_client: Callable[..., TestClient], backend: Backend
) -> None:
    """The production split: api workers only publish; the learner's worker consumes."""
    if backend.redis_url is None:
        pytest.skip("the split needs the Redis stream; the embedded default consumes in-process")
    api = make_client(role="api")
    assert services(api).signal_worker is None
    assert api.post("/v1/signals", json={"type": "energy", "value": 3}).status_code == 202
    # What `oo learner` builds (api/learner_process.py), on the same database and Redis.
    bus = make_signal_bus(backend.redis_url)
    learner = SignalWorker(
        SignalStore(services(api).store.engine),
        bus,
        retention=timedelta(days=90),
        prune_seconds=3600,
    )
    try:
        wait_until(lambda: learner.step(block_ms=100))
    finally:
        bus.close()
    assert learner.consumed == 1
    assert learner.last_prune is not None and learner.last_prune.remaining == 1
