"""Security headers on every answer (errors too), CORS only for listed origins, request counts."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
import sqlalchemy.exc
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY

from api.settings import Settings
from tests.api.test_ratelimit import HeaderAuth, as_

SIGNAL = {"type": "mood", "value": 4}
APP_ORIGIN = "https://app.example.com"
EVIL_ORIGIN = "https://evil.example.net"


def assert_secured(reply: httpx.Response) -> None:
    where = f"{reply.request.method} {reply.request.url.path} -> {reply.status_code}"
    assert reply.headers["X-Content-Type-Options"] == "nosniff", where
    assert reply.headers["X-Frame-Options"] == "DENY", where
    assert reply.headers["Referrer-Policy"] == "no-referrer", where
    assert "frame-ancestors 'none'" in reply.headers["Content-Security-Policy"], where
    if reply.headers.get("content-type", "").startswith("application/json"):
        assert reply.headers["Cache-Control"] == "no-store", where
        assert reply.headers["Content-Security-Policy"].startswith("default-src 'none'"), where


def test_every_answer_carries_the_security_headers(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=4096, rate_limit_signals="1/hour")
    services = client.app.state.services  # type: ignore[attr-defined]
    replies = [
        client.get("/health"),
        client.post("/v1/recommend"),
        client.get("/v1/me"),
        client.get("/openapi.json"),
        client.get("/metrics"),
        client.get("/no/such/route"),  # 404
        client.delete("/health"),  # 405
        client.post("/v1/signals", json={"type": "mood"}),  # 400 (FastAPI's 422)
        client.post("/v1/signals", content=b"{" + b" " * 8192 + b"}"),  # 413
        client.get("/v1/experiments/nope"),  # 404 from a lookup
    ]
    assert [r.status_code for r in replies] == [200, 200, 200, 200, 200, 404, 405, 400, 413, 404]

    # 429: a signed-in person over the signals budget (local mode is never limited).
    services.auth = HeaderAuth()
    client.post("/v1/signals", json=SIGNAL, headers=as_("ann")).raise_for_status()
    limited = client.post("/v1/signals", json=SIGNAL, headers=as_("ann"))
    assert limited.status_code == 429
    replies.append(limited)
    unauthenticated = client.get("/v1/me")
    assert unauthenticated.status_code == 401
    replies.append(unauthenticated)

    # 503: the database drops while a request runs.
    def down(*args: object, **kwargs: object) -> None:
        raise sqlalchemy.exc.OperationalError("SELECT 1", {}, ConnectionRefusedError())

    services.people.profile = down
    unavailable = client.get("/v1/me", headers=as_("ann"))
    assert unavailable.status_code == 503
    replies.append(unavailable)

    for reply in replies:
        assert_secured(reply)
        assert "Strict-Transport-Security" not in reply.headers


def test_pages_keep_their_own_policy_and_caching(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert page.headers["Content-Security-Policy"].startswith("default-src 'self'")
    assert page.headers["Cache-Control"] == "no-cache"
    assert_secured(page)
    # Swagger UI loads its own scripts, and a `default-src 'none'` on the service worker would
    # block its fetches: both are only kept out of frames.
    for path in ("/docs", "/sw.js"):
        reply = client.get(path)
        assert reply.headers["Content-Security-Policy"] == "frame-ancestors 'none'", path
        assert_secured(reply)


def test_hsts_when_the_public_url_is_https(make_client: Callable[..., TestClient]) -> None:
    client = make_client(public_url="https://oo.example.com")
    for reply in (client.get("/health"), client.get("/nope"), client.get("/")):
        assert reply.headers["Strict-Transport-Security"] == "max-age=31536000"
    plain = make_client(public_url="http://127.0.0.1:8000")
    assert "Strict-Transport-Security" not in plain.get("/health").headers


def preflight(client: TestClient, origin: str) -> httpx.Response:
    return client.options(
        "/v1/signals",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )


def test_cors_is_off_by_default(client: TestClient) -> None:
    reply = preflight(client, APP_ORIGIN)
    assert reply.status_code == 405
    assert "access-control-allow-origin" not in reply.headers
    simple = client.post("/v1/signals", json=SIGNAL, headers={"Origin": APP_ORIGIN})
    assert simple.status_code == 202  # same-origin rules are the browser's: it sees no grant
    assert "access-control-allow-origin" not in simple.headers


def test_cors_allows_listed_origins_with_credentials(
    make_client: Callable[..., TestClient],
) -> None:
    client = make_client(cors_origins=[APP_ORIGIN])
    allowed = preflight(client, APP_ORIGIN)
    assert allowed.status_code == 200
    assert allowed.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert allowed.headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in allowed.headers["Access-Control-Allow-Methods"]
    assert "content-type" in allowed.headers["Access-Control-Allow-Headers"].lower()
    assert_secured(allowed)

    refused = preflight(client, EVIL_ORIGIN)
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers

    answered = client.post("/v1/signals", json=SIGNAL, headers={"Origin": APP_ORIGIN})
    assert answered.headers["Access-Control-Allow-Origin"] == APP_ORIGIN
    assert "Retry-After" in answered.headers["Access-Control-Expose-Headers"]
    other = client.post("/v1/signals", json=SIGNAL, headers={"Origin": EVIL_ORIGIN})
    assert "access-control-allow-origin" not in other.headers
    # A lookalike of a listed origin is another origin.
    lookalike = preflight(client, APP_ORIGIN + ".evil.example.net")
    assert "access-control-allow-origin" not in lookalike.headers


@pytest.mark.parametrize(
    "origin", ["*", "https://app.example.com/", "app.example.com", "https://*.example.com"]
)
def test_cors_origins_must_be_exact(origin: str) -> None:
    with pytest.raises(ValueError, match="`cors_origins` holds exact origins"):
        Settings(cors_origins=origin)


def test_answers_are_counted_by_route_template(client: TestClient) -> None:
    def count(route: str, status: str) -> float:
        labels = {"method": "GET", "route": route, "status": status}
        return REGISTRY.get_sample_value("oo_http_requests_total", labels) or 0.0

    before = count("/v1/me", "200"), count("unmatched", "404")
    client.get("/v1/me")
    client.get("/scanner/probe/wp-login.php")
    assert (count("/v1/me", "200"), count("unmatched", "404")) == (before[0] + 1, before[1] + 1)
