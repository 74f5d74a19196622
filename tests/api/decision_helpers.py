"""Small helpers shared by the decision API contract tests (Personalizer and tips surfaces)."""

from __future__ import annotations

import asyncio
import math
import re
import threading
from typing import Any, Literal

import httpx
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.services.process import Services
from bandit.store import LoggedDecision

Form = Literal["v1", "preview"]
FORMS: tuple[Form, ...] = ("v1", "preview")
PREVIEW_VERSION = "2022-09-01-preview"
TABLES = ("decisions", "rewards", "signals", "profiles")


def services(client: TestClient) -> Services:
    found: Services = client.app.state.services  # type: ignore[attr-defined]
    return found


def personalizer_url(path: str, form: Form = "v1") -> str:
    """`/rank` -> `/personalizer/v1.0/rank` or `/personalizer/rank?api-version=...`."""
    if form == "v1":
        return f"/personalizer/v1.0{path}"
    return f"/personalizer{path}?api-version={PREVIEW_VERSION}"


def event_url(event_id: str, verb: Literal["reward", "activate"], form: Form = "v1") -> str:
    return personalizer_url(f"/events/{event_id}/{verb}", form)


def actions(*ids: str) -> list[dict[str, Any]]:
    """Rankable actions with a few features each, e.g. `actions("news", "sport")`."""
    return [
        {"id": action_id, "features": [{"item": {"name": action_id, "rank": i}}, {"len": i + 1}]}
        for i, action_id in enumerate(ids)
    ]


def rank(
    client: TestClient,
    body: dict[str, Any],
    *,
    form: Form = "v1",
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    reply = client.post(personalizer_url("/rank", form), json=body, headers=headers)
    assert reply.status_code == 201, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


def recommend(client: TestClient, **body: Any) -> dict[str, Any]:
    reply = client.post("/v1/recommend", json=body)
    assert reply.status_code == 200, reply.text
    answer: dict[str, Any] = reply.json()
    return answer


def logged(client: TestClient, event_id: str) -> LoggedDecision:
    found = services(client).store.get(event_id)
    assert found is not None, f"decision {event_id!r} is not logged"
    return found


def learned(client: TestClient, event_id: str) -> LoggedDecision | None:
    """The logged decision once the learner marked it learned, else None (for `wait_until`)."""
    found = logged(client, event_id)
    return found if found.learn_seq is not None else None


def row_counts(client: TestClient) -> dict[str, int]:
    """Rows in the tables a request could write: a refused request must leave them unchanged."""
    with services(client).store.engine.connect() as conn:
        return {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar_one() for t in TABLES}


def assert_pmf(pmf: Any) -> None:
    assert all(0.0 <= p <= 1.0 for p in pmf), pmf
    assert math.isclose(math.fsum(pmf), 1.0, abs_tol=1e-6), pmf


def assert_error(
    reply: httpx.Response,
    status: int,
    code: str,
    *,
    target: str | None = None,
    match: str | None = None,
) -> dict[str, Any]:
    """Personalizer's error body, with the code repeated in `x-ms-error-code`."""
    assert reply.status_code == status, reply.text
    assert reply.headers["x-ms-error-code"] == code
    error: dict[str, Any] = reply.json()["error"]
    assert error["code"] == code, error
    if target is not None:
        assert error.get("target") == target, error
    if match is not None:
        assert re.search(match, error["message"]), error["message"]
    return error


def where_recommend_reads(client: TestClient, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record, for each of recommend's reads (the person's moment, the timing surface's open
    waits, the live sources), where it ran: on the event loop ("read@loop"), in a batch of
    PostgreSQL reads ("read@batch", `RecommendReads`: its task on the loop, or its thread) or
    on a worker thread ("read@thread");
    the list fills as recommends are made."""
    seen: list[str] = []
    found = services(client)
    steps = [
        (found.tip_decisions, "read", "read"),
        (found.tip_decisions, "read_query", "read"),
        (found.timing, "waiting", "waiting"),
        (found.timing, "waiting_query", "waiting"),
        (found.tip_decisions, "gather", "gather"),
    ]
    for owner, name, step in steps:

        def recorded(*args: Any, _call: Any = getattr(owner, name), _step: str = step) -> Any:
            try:
                task = asyncio.current_task()
            except RuntimeError:  # no running loop
                task = None
            in_batch = task.get_name() if task is not None else threading.current_thread().name
            if in_batch == "recommend-reads":
                seen.append(f"{_step}@batch")
            elif task is not None:
                seen.append(f"{_step}@loop")
            else:
                seen.append(f"{_step}@thread")
            return _call(*args)

        monkeypatch.setattr(owner, name, recorded)
    return seen
