"""People's integrations end to end: OAuth connect, recommend with live sources, disconnect.

Todoist and Google are local HTTP servers (tests/integrations/providers.py) serving their
documented answers, scripted per test with 401, 429 + Retry-After, 5xx and slow responses.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa
from fastapi import Request
from fastapi.testclient import TestClient

from api.deps import current_person
from integrations.vault import new_key_entry
from tests.api.decision_helpers import where_recommend_reads
from tests.conftest import Backend
from tests.integrations.conftest import Reply
from tests.integrations.providers import (  # noqa: F401 - the fixture
    CLIENT_ID,
    FakeProviders,
    providers_fixture,
)

TASKS = "/todoist/api/v1/tasks"
FREEBUSY = "/google/calendar/v3/freeBusy"
MakeClient = Callable[..., TestClient]


def start(make_client: MakeClient, providers: FakeProviders, **settings: Any) -> TestClient:
    settings.setdefault("vault_keys", new_key_entry("test"))
    # A roomy deadline on a busy test machine; the timeout test sets a short one.
    settings.setdefault("provider_deadline_ms", 5000)
    client = make_client(**providers.settings(**settings))
    client.patch("/v1/me", json={"kinds": ["advice", "todo"]})
    return client


def connect(client: TestClient, providers: FakeProviders, provider: str = "todoist") -> str:
    """Run the OAuth dance; returns the state the provider was given."""
    started = client.get(f"/v1/integrations/{provider}/connect", follow_redirects=False)
    assert started.status_code == 302, started.text
    query = parse_qs(urlsplit(started.headers["location"]).query)
    state = query["state"][0]
    challenge = query.get("code_challenge", [None])[0]  # Google's PKCE
    done = client.get(
        f"/v1/integrations/{provider}/callback",
        params={"code": providers.code(challenge), "state": state},
        follow_redirects=False,
    )
    assert done.status_code == 302, done.text
    assert done.headers["location"] == "/"
    return state


def status_of(client: TestClient, provider: str) -> dict[str, Any]:
    listed = client.get("/v1/integrations").json()["integrations"]
    return next(item for item in listed if item["provider"] == provider)


def pin_event_ids(client: TestClient, prefix: str) -> None:
    """Recommends are named `{prefix}-0`, `{prefix}-1`, ...: their draws no longer vary by run."""
    numbers = itertools.count()
    services = client.app.state.services  # type: ignore[attr-defined]
    services.event_ids = lambda: f"{prefix}-{next(numbers)}"


def decision_row(client: TestClient, event_id: str) -> Any:
    logged = client.app.state.services.store.get(event_id)  # type: ignore[attr-defined]
    assert logged is not None
    return logged.decision


def test_connect_recommend_todos_and_disconnect(
    make_client: MakeClient, providers: FakeProviders
) -> None:
    # Uniform draws: every candidate, tasks included, has its fair chance to be shown.
    client = start(make_client, providers, tips_policy="random")
    assert status_of(client, "todoist")["status"] == "not_connected"

    started = client.get("/v1/integrations/todoist/connect", follow_redirects=False)
    location = urlsplit(started.headers["location"])
    query = parse_qs(location.query)
    assert location.path == "/todoist/oauth/authorize"
    assert query["client_id"] == [CLIENT_ID] and query["scope"] == ["data:read"]
    assert len(query["state"][0]) >= 32
    connect(client, providers)
    listed = status_of(client, "todoist")
    assert listed["status"] == "connected" and listed["connected_at"]

    titles = {task["content"] for task in providers.tasks}
    # Named events draw reproducibly; within these, `todo-5` draws from the top 6% of the
    # candidates, where the tasks (listed after the catalog's at most 30 tips) are.
    pin_event_ids(client, "todo")
    shown_todo = None
    for _ in range(40):
        answer = client.post("/v1/recommend").json()
        assert answer["missing_sources"] == []
        decision = decision_row(client, answer["event_id"])
        assert any(action.id.startswith("todoist:") for action in decision.actions)
        if answer["tip"]["id"].startswith("todoist:"):
            shown_todo = answer
            break
    assert shown_todo is not None, "no open task was ever chosen in 40 recommends"
    assert shown_todo["tip"]["kind"] == "todo"
    assert shown_todo["tip"]["title"] in titles
    # Titles are shown, never stored: the decision log holds ids and features only.
    logged = json.dumps([a.features for a in decision_row(client, shown_todo["event_id"]).actions])
    assert not any(title in logged for title in titles)
    reacted = client.post(
        "/v1/feedback", json={"event_id": shown_todo["event_id"], "reaction": "done"}
    )
    assert reacted.status_code == 200 and reacted.json()["reward"] == 1.0

    token = providers.issued[0]
    assert client.delete("/v1/integrations/todoist").status_code == 204
    assert providers.revoked == [token]
    assert status_of(client, "todoist")["status"] == "not_connected"
    calls = len(providers.calls_to(TASKS))
    after = client.post("/v1/recommend").json()
    assert not after["tip"]["id"].startswith("todoist:")
    assert after["missing_sources"] == []
    assert len(providers.calls_to(TASKS)) == calls


def test_asking_a_connected_provider_takes_a_worker_thread(
    make_client: MakeClient,
    providers: FakeProviders,
    backend: Backend,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = start(make_client, providers)
    connect(client, providers)
    seen = where_recommend_reads(client, monkeypatch)
    for _ in range(2):  # the first loads the history from the log
        answer = client.post("/v1/recommend").json()
        assert answer["missing_sources"] == []
    where = "loop" if backend.name == "embedded" else "batch"
    assert seen[3:] == [f"read@{where}", f"waiting@{where}", "gather@thread"]
    # The tasks the thread gathered are candidates of the decision the loop made.
    assert any(
        a.id.startswith("todoist:") for a in decision_row(client, answer["event_id"]).actions
    )


def test_todoist_timeout_gives_an_advice_tip(
    make_client: MakeClient, providers: FakeProviders
) -> None:
    client = start(make_client, providers, provider_deadline_ms=150)
    connect(client, providers)
    client.patch("/v1/me", json={"kinds": ["advice"]})
    # Advice only: Todoist is not even asked.
    assert client.post("/v1/recommend").json()["missing_sources"] == []
    assert providers.calls_to(TASKS) == []

    client.patch("/v1/me", json={"kinds": ["advice", "todo"]})
    providers.script(TASKS, Reply(200, {"results": providers.tasks}, delay_s=2.0))
    answer = client.post("/v1/recommend")
    assert answer.status_code == 200
    body = answer.json()
    assert body["missing_sources"] == ["todoist"]
    assert not body["tip"]["id"].startswith("todoist:")
    decision = decision_row(client, body["event_id"])
    assert decision.missing_sources == ("todoist",)
    assert not any(action.id.startswith("todoist:") for action in decision.actions)
    assert status_of(client, "todoist")["status"] == "connected"


@pytest.mark.parametrize(
    "reply",
    [
        Reply(500, {"error": "Internal"}),
        Reply(503, None, {"Retry-After": "5"}),
        Reply(200, {"unexpected": True}),
    ],
    ids=["500", "503", "bad-shape"],
)
def test_failing_todoist_is_skipped(
    make_client: MakeClient, providers: FakeProviders, reply: Reply
) -> None:
    client = start(make_client, providers)
    connect(client, providers)
    providers.script(TASKS, reply)
    body = client.post("/v1/recommend").json()
    assert body["missing_sources"] == ["todoist"]
    assert status_of(client, "todoist")["status"] == "connected"


def test_rate_limited_todoist_waits_for_retry_after(
    make_client: MakeClient, providers: FakeProviders
) -> None:
    client = start(make_client, providers)
    connect(client, providers)
    providers.script(TASKS, Reply(429, {"error": "Too many"}, {"Retry-After": "120"}))
    assert client.post("/v1/recommend").json()["missing_sources"] == ["todoist"]
    assert client.post("/v1/recommend").json()["missing_sources"] == ["todoist"]
    assert len(providers.calls_to(TASKS)) == 1  # the second one did not ask before 120 s


def test_revoked_todoist_token_needs_reconnect(
    make_client: MakeClient, providers: FakeProviders
) -> None:
    client = start(make_client, providers)
    connect(client, providers)
    providers.access_tokens.clear()  # the person revoked the app at Todoist
    body = client.post("/v1/recommend").json()
    assert body["missing_sources"] == ["todoist"]
    listed = status_of(client, "todoist")
    assert listed["status"] == "needs_reconnect" and listed["connected_at"] is None
    calls = len(providers.calls_to(TASKS))
    assert client.post("/v1/recommend").json()["missing_sources"] == ["todoist"]
    assert len(providers.calls_to(TASKS)) == calls
    connect(client, providers)  # reconnecting heals it
    assert status_of(client, "todoist")["status"] == "connected"
    assert client.post("/v1/recommend").json()["missing_sources"] == []


def _person_from_header(request: Request) -> str:
    return request.headers.get("X-Test-Person", "alice")


def test_state_tampering_replay_expiry_and_other_person(
    make_client: MakeClient, providers: FakeProviders
) -> None:
    client = start(make_client, providers)
    client.app.dependency_overrides[current_person] = _person_from_header  # type: ignore[attr-defined]

    def begin(person: str) -> str:
        started = client.get(
            "/v1/integrations/todoist/connect",
            headers={"X-Test-Person": person},
            follow_redirects=False,
        )
        return parse_qs(urlsplit(started.headers["location"]).query)["state"][0]

    def finish(person: str, state: str, code: str | None = None) -> Any:
        return client.get(
            "/v1/integrations/todoist/callback",
            params={"code": code or providers.code(), "state": state},
            headers={"X-Test-Person": person},
            follow_redirects=False,
        )

    refusals = []
    state = begin("alice")
    refusals.append(finish("alice", state[:-2] + ("AA" if state[-2:] != "AA" else "BB")))
    refusals.append(finish("alice", state))  # the tampered try spent nothing, but this one...
    assert refusals.pop().status_code == 302
    refusals.append(finish("alice", state))  # ...is single use: a replay is refused
    refusals.append(finish("bob", begin("alice")))  # someone else's state
    services = client.app.state.services  # type: ignore[attr-defined]
    services.integrations.states.ttl = timedelta(seconds=-1)
    refusals.append(finish("alice", begin("alice")))  # expired
    services.integrations.states.ttl = timedelta(minutes=10)
    used_code = providers.code()
    assert finish("carol", begin("carol"), used_code).status_code == 302
    replayed_code = finish("carol", begin("carol"), used_code)
    assert replayed_code.status_code == 400
    assert replayed_code.json()["error"]["target"] == "code"
    assert used_code not in replayed_code.text

    messages = set()
    for refused in refusals:
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["target"] == "state"
        messages.add(error["message"])
    assert len(messages) == 1  # one answer for every reason: nothing leaks about the state
    statuses = {
        person: client.get("/v1/integrations", headers={"X-Test-Person": person}).json()
        for person in ("alice", "bob")
    }
    assert statuses["alice"]["integrations"][0]["status"] == "connected"
    assert statuses["bob"]["integrations"][0]["status"] == "not_connected"


def test_declined_consent_spends_the_state(
    make_client: MakeClient, providers: FakeProviders
) -> None:
    client = start(make_client, providers)
    started = client.get("/v1/integrations/todoist/connect", follow_redirects=False)
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    declined = client.get(
        "/v1/integrations/todoist/callback",
        params={"error": "access_denied", "state": state},
        follow_redirects=False,
    )
    assert declined.status_code == 400 and "access_denied" in declined.json()["error"]["message"]
    again = client.get(
        "/v1/integrations/todoist/callback",
        params={"code": providers.code(), "state": state},
        follow_redirects=False,
    )
    assert again.status_code == 400 and again.json()["error"]["target"] == "state"


def test_google_calendar_refresh_and_features(
    make_client: MakeClient, providers: FakeProviders
) -> None:
    providers.google_expires_in = 30  # inside the refresh leeway: expired at once
    now = datetime.now(UTC)
    providers.busy = [
        {
            "start": (now - timedelta(minutes=10)).isoformat(),
            "end": (now + timedelta(minutes=20)).isoformat(),
        },
    ]
    client = start(make_client, providers)
    client.patch("/v1/me", json={"kinds": ["advice"], "timezone": "UTC"})
    started = client.get("/v1/integrations/google-calendar/connect", follow_redirects=False)
    query = parse_qs(urlsplit(started.headers["location"]).query)
    assert query["access_type"] == ["offline"] and query["prompt"] == ["consent"]
    assert query["code_challenge_method"] == ["S256"]
    connect(client, providers, "google-calendar")
    services = client.app.state.services  # type: ignore[attr-defined]
    first = services.integrations.tokens().load("local", "google-calendar").token

    body = client.post("/v1/recommend").json()
    assert body["missing_sources"] == []
    refreshes = [
        c for c in providers.calls_to("/google/token") if c.form["grant_type"] == "refresh_token"
    ]
    assert len(refreshes) == 1 and refreshes[0].form["refresh_token"] == first.refresh_token
    stored = services.integrations.tokens().load("local", "google-calendar").token
    assert stored.access_token != first.access_token  # the refreshed token went back to the vault
    assert stored.refresh_token == first.refresh_token
    asked = providers.calls_to(FREEBUSY)[-1]
    assert asked.authorization == f"Bearer {stored.access_token}"
    assert asked.json["items"] == [{"id": "primary"}]
    context = decision_row(client, body["event_id"]).context
    calendar = next(obj["calendar"] for obj in context if "calendar" in obj)
    assert calendar["busy_2h"] is True and calendar["meetings"] == "1"
    assert calendar["free_in"] == "m15-60"

    # The person revokes access at Google: the refresh is refused, reconnect is asked for.
    providers.refresh_tokens.clear()
    providers.access_tokens.clear()
    services.integrations.calendar.forget("local")
    assert client.post("/v1/recommend").json()["missing_sources"] == ["google-calendar"]
    assert status_of(client, "google-calendar")["status"] == "needs_reconnect"

    assert client.delete("/v1/integrations/google-calendar").status_code == 204
    assert providers.revoked[-1] == stored.refresh_token
    assert status_of(client, "google-calendar")["status"] == "not_connected"


def test_a_google_token_refused_before_its_expiry_is_refreshed_once(
    make_client: MakeClient, providers: FakeProviders
) -> None:
    client = start(make_client, providers)
    client.patch("/v1/me", json={"kinds": ["advice"], "timezone": "UTC"})
    connect(client, providers, "google-calendar")
    services = client.app.state.services  # type: ignore[attr-defined]
    first = services.integrations.tokens().load("local", "google-calendar").token
    providers.access_tokens.discard(first.access_token)  # revoked; the refresh token still works

    assert client.post("/v1/recommend").json()["missing_sources"] == []
    refused, answered = providers.calls_to(FREEBUSY)
    stored = services.integrations.tokens().load("local", "google-calendar").token
    assert refused.authorization == f"Bearer {first.access_token}"
    assert answered.authorization == f"Bearer {stored.access_token}" != refused.authorization
    assert status_of(client, "google-calendar")["status"] == "connected"


def test_a_refused_todoist_token_is_not_refreshed(
    make_client: MakeClient, providers: FakeProviders
) -> None:
    client = start(make_client, providers)
    connect(client, providers)
    exchanges = len(providers.calls_to("/todoist/oauth/access_token"))
    providers.access_tokens.clear()
    assert client.post("/v1/recommend").json()["missing_sources"] == ["todoist"]
    assert len(providers.calls_to(TASKS)) == 1
    assert len(providers.calls_to("/todoist/oauth/access_token")) == exchanges


def test_unconfigured_provider_names_the_setting(make_client: MakeClient) -> None:
    client = make_client()
    answer = client.get("/v1/integrations/todoist/connect", follow_redirects=False)
    assert answer.status_code == 409
    assert "OO_TODOIST_CLIENT_ID" in answer.json()["error"]["message"]
    assert status_of(client, "todoist")["configured"] is False


def test_vault_key_is_generated_or_required(
    make_client: MakeClient, providers: FakeProviders, backend: Backend
) -> None:
    client = start(make_client, providers, vault_keys=None)
    started = client.get("/v1/integrations/todoist/connect", follow_redirects=False)
    if backend.name == "postgres":
        assert started.status_code == 409
        assert "OO_VAULT_KEYS" in started.json()["error"]["message"]
        return
    assert started.status_code == 302
    key_file = Path(backend.database_url.removeprefix("sqlite:///")).parent / "vault.keys"
    assert stat.S_IMODE(os.stat(key_file).st_mode) == 0o600


def test_forget_person_revokes_and_deletes(
    make_client: MakeClient, providers: FakeProviders
) -> None:
    client = start(make_client, providers)
    connect(client, providers)
    connect(client, providers, "google-calendar")
    services = client.app.state.services  # type: ignore[attr-defined]
    assert services.integrations.forget_person("local") == 2
    assert len(providers.revoked) == 2
    with services.store.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT count(*) FROM integration_tokens")).scalar()
    assert left == 0


def test_a_token_the_vault_cannot_open_is_skipped_and_can_be_disconnected(
    make_client: MakeClient, providers: FakeProviders
) -> None:
    connect(start(make_client, providers), providers)
    # The same database served with another key (the old one was dropped from OO_VAULT_KEYS).
    client = start(make_client, providers, vault_keys=new_key_entry("other"))
    assert client.post("/v1/recommend").json()["missing_sources"] == ["todoist"]
    assert providers.calls_to(TASKS) == []
    assert client.delete("/v1/integrations/todoist").status_code == 204
    assert providers.revoked == []  # it could not be revoked, but it is gone
    assert status_of(client, "todoist")["status"] == "not_connected"
