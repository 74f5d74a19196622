"""Health, metrics and the OpenAPI document."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_health_reports_every_dependency(client: TestClient) -> None:
    reply = client.get("/health")
    assert reply.status_code == 200
    body = reply.json()
    assert body["status"] == "ok"
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["model"]["status"] == "ok"
    services = client.app.state.services  # type: ignore[attr-defined]
    assert ("redis" in body["checks"]) == (services.settings.redis_url is not None)
    assert set(body["models"]) == {
        "tips:vw-squarecb-tuned",
        "personalizer:vw-squarecb-tuned",
        "timing:vw-timing",
    }


def test_health_fails_when_the_database_is_gone(client: TestClient) -> None:
    services = client.app.state.services  # type: ignore[attr-defined]
    services.store.ping = _raise  # the database stops answering
    reply = client.get("/health")
    assert reply.status_code == 503
    assert reply.json()["checks"]["database"] == {"status": "failing", "detail": "ConnectionError"}


def _raise() -> None:
    raise ConnectionError("database unreachable")


def test_metrics_count_decisions_and_rewards(client: TestClient) -> None:
    tip = client.post("/v1/recommend").json()
    client.post("/v1/feedback", json={"event_id": tip["event_id"], "reaction": "later"})
    text = client.get("/metrics").text
    for name in (
        'oo_decisions_total{policy="vw-squarecb-tuned",surface="tips"}',
        'oo_rewards_total{late="false",reaction="later",surface="tips"}',
        "oo_recommend_latency_seconds_bucket",
        "oo_rank_latency_seconds_bucket",
        "oo_join_lag_seconds_bucket",
        'oo_model_version{model="tips:vw-squarecb-tuned"}',
        "oo_learner_events_total",
    ):
        assert name in text, name


def test_openapi_document_is_current() -> None:
    """docs/openapi.json is generated from the schemas (`make openapi`); it must not drift."""
    generated = create_app(Settings()).openapi()
    committed = json.loads((ROOT / "docs" / "openapi.json").read_text())
    assert committed == json.loads(json.dumps(generated)), "run `make openapi` and commit"
