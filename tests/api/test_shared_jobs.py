"""Evaluation and policy-search jobs live in the shared `jobs` table: any api process answers for
a job another one runs, cancels it, and a job whose process stopped reads as failed."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

import api.services.evaluations
from api import jobstore
from api.jobstore import JobStore, jobs
from api.services.evaluations import EVALUATIONS
from bandit.events import utcnow
from rewards.ope.errors import EvaluationCancelled
from tests.api.decision_helpers import personalizer_url, services
from tests.api.test_policy_searches import GRID
from tests.api.test_policy_searches import write_log as recent_log
from tests.conftest import wait_until
from tests.rewards.synthetic import write_log


def _settled(client: TestClient, path: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(path).json()
        return body if body["status"] != "running" else None

    result: dict[str, Any] = wait_until(done, timeout=60)
    return result


def test_another_process_reads_an_evaluations_progress_and_result(
    make_client: Callable[..., TestClient],
) -> None:
    a, b = make_client(), make_client()
    write_log(services(a).store, 400, seed=31)
    job = a.post("/v1/evaluations", json={"surface": "personalizer", "policies": ["baseline"]})
    assert job.status_code == 201, job.text
    job_id = job.json()["id"]

    seen = b.get(f"/v1/evaluations/{job_id}")
    assert seen.status_code == 200, seen.text
    assert seen.json()["request"]["policies"] == ["baseline"]
    assert seen.json()["done"] <= seen.json()["total"]

    on_b = _settled(b, f"/v1/evaluations/{job_id}")
    assert on_b["status"] == "succeeded", on_b["error"]
    assert on_b["done"] == on_b["total"] == 400
    assert on_b == a.get(f"/v1/evaluations/{job_id}").json()
    assert [p["name"] for p in on_b["result"]["policies"]] == ["online", "baseline"]
    assert [e["id"] for e in b.get("/v1/evaluations").json()] == [job_id]

    # B draws the charts of A's evaluation, rebuilt from the jobs table, as A does.
    page = b.get("/dashboards/analysis", params={"evaluation": job_id})
    assert page.status_code == 200, page.text
    assert "another api process" not in page.text
    assert 'data-policy="baseline"' in page.text
    assert _charts(page.text) == _charts(a.get(f"/dashboards/analysis?evaluation={job_id}").text)


def _charts(page: str) -> str:
    """The page's SVG charts (the rest holds the time it was drawn)."""
    return "".join(re.findall(r"<svg.*?</svg>", page, flags=re.DOTALL))


def test_another_process_sees_progress_and_cancels_a_running_evaluation(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The evaluation itself is replaced by one that reports progress, then runs until
    # cancelled: what is under test is how progress and cancellation cross processes.
    stopped = threading.Event()

    def until_cancelled(*args: Any, on_progress: Any, cancel: Any, **kwargs: Any) -> Any:
        on_progress(3, 10)
        give_up = time.monotonic() + 60
        while time.monotonic() < give_up:
            if cancel.is_set():
                stopped.set()
                raise EvaluationCancelled(3, 10)
            time.sleep(0.01)
        raise AssertionError("never cancelled")

    monkeypatch.setattr(api.services.evaluations, "evaluate", until_cancelled)
    a, b = make_client(), make_client()
    job_id = a.post("/v1/evaluations", json={"surface": "personalizer"}).json()["id"]

    progress = wait_until(
        lambda: (body := b.get(f"/v1/evaluations/{job_id}").json())["done"] == 3 and body
    )
    assert progress["status"] == "running" and progress["total"] == 10

    assert b.delete(f"/v1/evaluations/{job_id}").status_code == 204
    assert a.get(f"/v1/evaluations/{job_id}").status_code == 404
    assert stopped.wait(timeout=30), "process A never saw the cancellation"
    runner = services(a).runner
    wait_until(lambda: not runner.running_here(EVALUATIONS, job_id))


def test_another_process_reads_and_promotes_a_search(
    make_client: Callable[..., TestClient],
) -> None:
    a, b = make_client(), make_client()
    recent_log(services(a).store, 600, seed=32)
    search_id = a.post("/v1/policy-searches", json=GRID).json()["id"]
    on_b = _settled(b, f"/v1/policy-searches/{search_id}")
    assert on_b["status"] == "succeeded", on_b["error"]
    assert on_b["candidates_done"] == on_b["candidates_planned"] == 2
    assert on_b["done"] == on_b["total"] == 1200
    assert on_b == a.get(f"/v1/policy-searches/{search_id}").json()

    # B did not run it: it rebuilds the candidates' results from the jobs table.
    leader = on_b["result"]["leader"]
    body = {"name": "found", "candidate": leader}
    on_other = b.post(f"/v1/policy-searches/{search_id}/promote", json=body)
    assert on_other.status_code == 200, on_other.text
    args = next(
        t["candidate"]["args"]
        for t in on_b["result"]["trials"]
        if t["candidate"]["index"] == leader
    )
    assert on_other.json()["policy"]["args"] == args
    assert on_other.json()["policy_created"] is True
    on_runner = a.post(f"/v1/policy-searches/{search_id}/promote", json=body)
    assert on_runner.status_code == 200, on_runner.text
    assert on_runner.json()["policy"]["id"] == on_other.json()["policy"]["id"]  # same version
    assert on_runner.json()["policy_created"] is False

    assert b.delete(f"/v1/policy-searches/{search_id}").status_code == 204
    assert a.get(f"/v1/policy-searches/{search_id}").status_code == 404


def _left_running(store: JobStore, kind: str, request: dict[str, Any], quiet_for: float) -> str:
    row = store.create(kind, request, keep=100)
    with store.engine.begin() as conn:
        conn.execute(
            jobs.update()
            .where(jobs.c.id == row.id)
            .values(owner="gone:1:dead", updated_at=utcnow() - timedelta(seconds=quiet_for))
        )
    return row.id


def test_start_up_fails_the_jobs_of_a_process_that_stopped(
    make_client: Callable[..., TestClient],
) -> None:
    first = make_client()
    store = services(first).jobs
    abandoned = _left_running(
        store, "evaluation", {"surface": "personalizer"}, jobstore.STALE_AFTER + 60
    )
    live = _left_running(store, "evaluation", {"surface": "personalizer"}, 1)
    with store.engine.connect() as conn:
        assert conn.execute(jobs.select().where(jobs.c.id == abandoned)).one().status == "running"

    restarted = make_client()
    with store.engine.connect() as conn:  # by start-up itself, before any request reads it
        row = conn.execute(jobs.select().where(jobs.c.id == abandoned)).one()
    assert row.status == "failed"
    assert row.error == jobstore.STOPPED
    assert row.finished_at is not None

    body = restarted.get(f"/v1/evaluations/{abandoned}").json()
    assert body["status"] == "failed"
    assert body["error"] == "the process running it stopped"
    assert restarted.get(f"/v1/evaluations/{live}").json()["status"] == "running"


def test_personalizer_evaluations_and_importances_are_shared(
    make_client: Callable[..., TestClient],
) -> None:
    a, b = make_client(), make_client()
    now = datetime.now(UTC)
    window = {"startTime": (now - timedelta(hours=1)).isoformat(), "endTime": now.isoformat()}
    url = personalizer_url("/evaluations/pe-1", "preview")
    created = a.put(url, json={"name": "shared", **window})
    assert created.status_code == 200, created.text
    taken = b.put(url, json={"name": "again", **window})
    assert taken.status_code == 409, taken.text
    assert taken.json()["error"]["target"] == "id"

    def settled(client: TestClient, path: str) -> dict[str, Any] | None:
        body: dict[str, Any] = client.get(path).json()
        return body if body["status"] != "Running" else None

    on_b = wait_until(lambda: settled(b, url), timeout=30)
    assert on_b["name"] == "shared"
    assert on_b == a.get(url).json()
    listed = b.get(personalizer_url("/evaluations", "preview")).json()
    assert [e["id"] for e in listed["value"]] == ["pe-1"]

    fi = personalizer_url("/featureImportances/fi-1", "preview")
    assert a.put(fi, json={"name": "what matters", **window}).status_code == 200
    importance = wait_until(lambda: settled(b, fi), timeout=30)
    assert importance == a.get(fi).json()

    assert b.delete(url).status_code == 204
    assert b.delete(fi).status_code == 204
    assert a.get(url).status_code == 404
    assert a.get(fi).status_code == 404
