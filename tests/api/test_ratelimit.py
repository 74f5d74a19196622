"""Rate limits per principal: GCRA arithmetic, 429 with a correct Retry-After, budgets shared
through Redis by several api processes, 401s that spend nothing, and failing open."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from starlette.requests import HTTPConnection

from api.auth.principal import Principal, Role
from api.errors import Unauthorized
from api.ratelimit import (
    Bucket,
    Budget,
    MemoryStore,
    RateLimited,
    RateLimiter,
    RedisStore,
    Verdict,
)
from tests.conftest import Backend, free_port

PERSON = "X-Test-Person"
KEY = "Ocp-Apim-Subscription-Key"
SIGNAL = {"type": "mood", "value": 4}
RANK = {"actions": [{"id": "a", "features": [{"x": 1}]}, {"id": "b", "features": [{"x": 2}]}]}


class HeaderAuth:
    """People named by a test header, keys `key-*`: the Authenticator interface, no sign-in."""

    local = False

    def authenticate(self, request: HTTPConnection) -> Principal | None:
        person = request.headers.get(PERSON)
        if person is None:
            return None
        if person == "expired":
            raise Unauthorized("the access token has expired", target="Authorization")
        return Principal(person, "person", frozenset({Role.PERSON}))

    def authenticate_key(self, key: str | None) -> Principal | None:
        if key is None or not key.startswith("key-"):
            return None
        return Principal(f"key:{key}", "key", frozenset())


def signed_in(client: TestClient) -> TestClient:
    client.app.state.services.auth = HeaderAuth()  # type: ignore[attr-defined]
    return client


def as_(person: str) -> dict[str, str]:
    return {PERSON: person}


def errors_counted() -> float:
    return REGISTRY.get_sample_value("oo_rate_limit_errors_total") or 0.0


# --- the arithmetic ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "limit", "period"),
    [("30/minute", 30, 60.0), ("5/10s", 5, 10.0), ("1000/hour", 1000, 3600.0), ("2/day", 2, 86400)],
)
def test_budgets_parse(text: str, limit: int, period: float) -> None:
    assert Budget.parse(text) == Budget(limit, period)


def test_off_is_no_budget_and_nonsense_is_refused() -> None:
    assert Budget.parse("off") is None
    with pytest.raises(ValueError, match=r"`<count>/<unit>`.*got '30 per minute'"):
        Budget.parse("30 per minute")
    with pytest.raises(ValueError, match="positive count"):
        Budget.parse("0/minute")


def test_a_full_bucket_allows_its_limit_at_once_then_one_per_interval() -> None:
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])
    budget = Budget(3, 60.0)  # one request every 20 s, three at once
    assert [store.check("p", budget).remaining for _ in range(3)] == [2, 1, 0]
    refused = store.check("p", budget)
    assert not refused.allowed
    assert refused.retry_after == pytest.approx(20.0)
    now[0] += 19.5
    assert store.check("p", budget).retry_after == pytest.approx(0.5)
    assert store.check("p", budget).retry_after_header == "1"
    now[0] += 0.5
    assert store.check("p", budget).allowed
    assert not store.check("p", budget).allowed
    # A long pause refills the bucket to its limit, never beyond.
    now[0] += 3600
    assert [store.check("p", budget).allowed for _ in range(4)] == [True, True, True, False]


def test_each_key_has_its_own_bucket() -> None:
    store = MemoryStore(clock=lambda: 0.0)
    budget = Budget(1, 60.0)
    assert store.check("a", budget).allowed
    assert not store.check("a", budget).allowed
    assert store.check("b", budget).allowed


def test_retry_after_header_rounds_up_to_whole_seconds() -> None:
    assert Verdict(False, 3, 0, 19.2).retry_after_header == "20"
    assert Verdict(False, 3, 0, 20.0).retry_after_header == "20"
    assert Verdict(False, 3, 0, 0.001).retry_after_header == "1"


def test_the_local_owner_is_not_limited() -> None:
    limiter = RateLimiter(MemoryStore(), {Bucket.DEFAULT: Budget(1, 3600.0)})
    local = Principal("local", "local", frozenset(Role))
    person = Principal("p", "person", frozenset({Role.PERSON}))
    assert all(limiter.check(Bucket.DEFAULT, local) is None for _ in range(5))
    assert limiter.check(Bucket.DEFAULT, person) is not None
    with pytest.raises(RateLimited, match=r"rate limit `default` of 1 requests per 3600 s"):
        limiter.check(Bucket.DEFAULT, person)


# --- over HTTP, on both backends ---------------------------------------------------------------


def test_flooding_signals_is_refused_with_retry_after(
    make_client: Callable[..., TestClient],
) -> None:
    client = signed_in(make_client(rate_limit_signals="3/minute"))
    started = time.monotonic()
    replies = [client.post("/v1/signals", json=SIGNAL, headers=as_("ann")) for _ in range(3)]
    assert [r.status_code for r in replies] == [202, 202, 202]
    assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["2", "1", "0"]
    assert {r.headers["X-RateLimit-Limit"] for r in replies} == {"3"}

    refused = client.post("/v1/signals", json=SIGNAL, headers=as_("ann"))
    elapsed = time.monotonic() - started
    assert refused.status_code == 429
    # One request every 20 s: the next one is due 20 s after the first.
    assert 20 - elapsed - 1 <= int(refused.headers["Retry-After"]) <= 20
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    error = refused.json()["error"]
    assert error["code"] == "TooManyRequests" == refused.headers["x-ms-error-code"]
    assert error["target"] == "signals"
    assert "rate limit `signals` of 3 requests per 60 s" in error["message"]

    # Another person's budget is their own; Ann's other routes spend the default bucket only.
    assert client.post("/v1/signals", json=SIGNAL, headers=as_("bob")).status_code == 202
    assert client.get("/v1/me", headers=as_("ann")).status_code == 200


def test_waiting_retry_after_is_enough(make_client: Callable[..., TestClient]) -> None:
    client = signed_in(make_client(rate_limit_signals="2/2s"))
    for _ in range(2):
        client.post("/v1/signals", json=SIGNAL, headers=as_("ann")).raise_for_status()
    refused = client.post("/v1/signals", json=SIGNAL, headers=as_("ann"))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    time.sleep(float(refused.headers["Retry-After"]))
    assert client.post("/v1/signals", json=SIGNAL, headers=as_("ann")).status_code == 202


def test_unauthenticated_requests_spend_no_budget(make_client: Callable[..., TestClient]) -> None:
    client = signed_in(make_client(rate_limit_default="2/hour"))
    for headers in ({}, as_("expired")) * 3:
        assert client.get("/v1/me", headers=headers).status_code == 401
    assert [client.get("/v1/me", headers=as_("ann")).status_code for _ in range(3)] == [
        200,
        200,
        429,
    ]


def test_personalizer_budget_is_per_key(make_client: Callable[..., TestClient]) -> None:
    client = signed_in(make_client(rate_limit_personalizer="2/hour"))
    for _ in range(3):
        assert client.post("/personalizer/v1.0/rank", json=RANK).status_code == 401
        assert (
            client.post("/personalizer/v1.0/rank", json=RANK, headers={KEY: "no"}).status_code
            == 401
        )
    ranked = [
        client.post("/personalizer/v1.0/rank", json=RANK, headers={KEY: "key-a"}) for _ in range(3)
    ]
    assert [r.status_code for r in ranked] == [201, 201, 429]
    assert ranked[2].json()["error"]["target"] == "personalizer"
    # v1.0 and preview paths share the key's budget; another key has its own.
    reward = client.post(
        f"/personalizer/events/{ranked[0].json()['eventId']}/reward",
        json={"value": 1},
        headers={KEY: "key-a"},
    )
    assert reward.status_code == 429
    assert (
        client.post("/personalizer/v1.0/rank", json=RANK, headers={KEY: "key-b"}).status_code == 201
    )


def test_budgets_can_be_turned_off(make_client: Callable[..., TestClient]) -> None:
    client = signed_in(make_client(rate_limit_signals="off", rate_limit_default="off"))
    for _ in range(40):
        assert client.post("/v1/signals", json=SIGNAL, headers=as_("ann")).status_code == 202


def test_local_single_user_mode_is_not_limited(make_client: Callable[..., TestClient]) -> None:
    client = make_client(rate_limit_signals="1/hour")
    assert [client.post("/v1/signals", json=SIGNAL).status_code for _ in range(3)] == [202] * 3


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_two_api_processes_share_budgets_through_redis(
    make_client: Callable[..., TestClient], backend: Backend
) -> None:
    first = signed_in(make_client(rate_limit_signals="4/hour"))
    second = signed_in(make_client(rate_limit_signals="4/hour", role="api"))
    replies = [
        api.post("/v1/signals", json=SIGNAL, headers=as_("ann"))
        for api in (first, second, first, second)
    ]
    assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["3", "2", "1", "0"]
    assert first.post("/v1/signals", json=SIGNAL, headers=as_("ann")).status_code == 429
    refused = second.post("/v1/signals", json=SIGNAL, headers=as_("ann"))
    assert refused.status_code == 429
    assert 900 - 60 <= int(refused.headers["Retry-After"]) <= 900


def test_an_unreachable_redis_fails_open() -> None:
    store = RedisStore(f"redis://127.0.0.1:{free_port()}/0", cooldown=60.0)
    limiter = RateLimiter(store, {Bucket.SIGNALS: Budget(1, 3600.0)})
    person = Principal("p", "person", frozenset({Role.PERSON}))
    before = errors_counted()
    try:
        verdicts = [limiter.check(Bucket.SIGNALS, person) for _ in range(3)]
    finally:
        limiter.close()
    assert all(v is not None and v.allowed for v in verdicts)
    # The first failure is logged and counted; during the cool-down Redis is not asked again.
    assert errors_counted() - before == 3


def test_requests_are_served_when_the_limit_store_fails(
    make_client: Callable[..., TestClient],
) -> None:
    client = signed_in(make_client(rate_limit_signals="1/hour"))
    client.app.state.rate_limiter = RateLimiter(  # type: ignore[attr-defined]
        RedisStore(f"redis://127.0.0.1:{free_port()}/0"),
        {Bucket.SIGNALS: Budget(1, 3600.0), Bucket.DEFAULT: Budget(1, 3600.0)},
    )
    before = errors_counted()
    replies = [client.post("/v1/signals", json=SIGNAL, headers=as_("ann")) for _ in range(3)]
    assert [r.status_code for r in replies] == [202] * 3
    assert errors_counted() > before
