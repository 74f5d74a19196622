"""Rate limits per principal: GCRA arithmetic, 429 with a correct Retry-After, budgets shared
through Redis by several api processes, 401s that spend nothing, and failing open.

Every clock here is injected (whole microseconds): the arithmetic must not depend on what a
real clock happens to read, and the Python and Redis versions must agree at any reading.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Iterator
from typing import NamedTuple

import pytest
import redis
from fastapi.testclient import TestClient
from hypothesis import example, given, settings
from hypothesis import strategies as st
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
    gcra,
)
from tests.conftest import REDIS_URL, Backend, free_port

PERSON = "X-Test-Person"
KEY = "Ocp-Apim-Subscription-Key"
SIGNAL = {"type": "mood", "value": 4}
RANK = {"actions": [{"id": "a", "features": [{"x": 1}]}, {"id": "b", "features": [{"x": 2}]}]}
US = 1_000_000


class HeaderAuth:
    """People named by a test header, keys `key-*`: the Authenticator interface, no sign-in."""

    local = False

    def authenticate(
        self, request: HTTPConnection, *, memory_only: bool = False
    ) -> Principal | None:
        person = request.headers.get(PERSON)
        if person is None:
            return None
        if person == "expired":
            raise Unauthorized("the access token has expired", target="Authorization")
        return Principal(person, "person", frozenset({Role.PERSON}))

    def authenticate_key(self, key: str | None, *, memory_only: bool = False) -> Principal | None:
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


class Clock:
    """A clock the test moves, in whole microseconds."""

    def __init__(self, now: int = 1_000 * US) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * US)


def on_clock(client: TestClient, backend: Backend, clock: Clock) -> None:
    """Time the app's rate limits by `clock`, in Redis or in memory as the backend keeps them."""
    limiter: RateLimiter = client.app.state.rate_limiter  # type: ignore[attr-defined]
    limiter.store.close()
    limiter.store = (
        RedisStore(backend.redis_url, clock=clock) if backend.redis_url else MemoryStore(clock)
    )


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
    with pytest.raises(ValueError, match=r"period is at most 52124 days; got '1/60000day'"):
        Budget.parse("1/60000day")
    with pytest.raises(ValueError, match=r"one request per microsecond; got 2000000/1s"):
        Budget.parse("2000000/second")
    with pytest.raises(ValueError, match="positive count"):
        Budget(1, float("nan"))


def test_budgets_count_whole_microseconds() -> None:
    assert (Budget(30, 60.0).interval_us, Budget(30, 60.0).burst_us) == (2 * US, 60 * US)
    # 7/minute: the interval is rounded down, and a full bucket still holds exactly 7.
    assert (Budget(7, 60.0).interval_us, Budget(7, 60.0).burst_us) == (8_571_428, 59_999_996)


def test_a_full_bucket_allows_its_limit_at_once_then_one_per_interval() -> None:
    clock = Clock()
    store = MemoryStore(clock)
    budget = Budget(3, 60.0)  # one request every 20 s, three at once
    assert [store.check("p", budget).remaining for _ in range(3)] == [2, 1, 0]
    refused = store.check("p", budget)
    assert not refused.allowed
    assert refused.retry_after_us == 20 * US
    clock.advance(19.5)
    assert store.check("p", budget).retry_after == 0.5
    assert store.check("p", budget).retry_after_header == "1"
    clock.advance(0.5)
    assert store.check("p", budget).allowed
    assert not store.check("p", budget).allowed
    # A long pause refills the bucket to its limit, never beyond.
    clock.advance(3600)
    assert [store.check("p", budget).allowed for _ in range(4)] == [True, True, True, False]


def test_each_key_has_its_own_bucket() -> None:
    store = MemoryStore(clock=lambda: 0)
    budget = Budget(1, 60.0)
    assert store.check("a", budget).allowed
    assert not store.check("a", budget).allowed
    assert store.check("b", budget).allowed


def test_retry_after_header_rounds_up_to_whole_seconds() -> None:
    assert Verdict(False, 3, 0, 19_200_000).retry_after_header == "20"
    assert Verdict(False, 3, 0, 20_000_000).retry_after_header == "20"
    assert Verdict(False, 3, 0, 20_000_001).retry_after_header == "21"
    assert Verdict(False, 3, 0, 1_000).retry_after_header == "1"


def test_the_local_owner_is_not_limited() -> None:
    limiter = RateLimiter(MemoryStore(Clock()), {Bucket.DEFAULT: Budget(1, 3600.0)})
    local = Principal("local", "local", frozenset(Role))
    person = Principal("p", "person", frozenset({Role.PERSON}))
    assert all(limiter.check(Bucket.DEFAULT, local) is None for _ in range(5))
    assert limiter.check(Bucket.DEFAULT, person) is not None
    with pytest.raises(RateLimited, match=r"rate limit `default` of 1 requests per 3600 s"):
        limiter.check(Bucket.DEFAULT, person)


# --- at any clock reading: properties, and Python against the Lua script ----------------------

# Clock readings: a monotonic clock soon after boot (small, fractional seconds), and wall-clock
# epochs (1e9 s, 1.7e9 s) where a float in seconds is coarser than a microsecond. In floating
# point, `(now + 3600) - 3600 > now` for about one reading in ten of the first kind.
readings = st.one_of(
    st.integers(0, 10 * US),
    st.floats(0, 2e9).map(lambda seconds: round(seconds * US)),
    st.sampled_from([0, 1, 300_000, 5_300_000, 100_300_000, 10**15, 17 * 10**14, 2**51]),
)


@st.composite
def budgets(draw: st.DrawFn) -> Budget:
    period_us = draw(
        st.sampled_from([US, 10 * US, 60 * US, 3600 * US, 86400 * US])
        | st.integers(1, 400 * 86400 * US)
    )
    limit = draw(st.integers(1, min(period_us, 10_000)) | st.sampled_from([1, 2, 3, 7, 30]))
    return Budget(min(limit, period_us), period_us / US)


@given(budget=budgets(), now=readings)
@example(budget=Budget(1, 3600.0), now=100_300_000)  # refused in floating point seconds
def test_the_first_request_of_any_budget_is_allowed(budget: Budget, now: int) -> None:
    verdict, tat = gcra(None, now, budget)
    assert verdict == Verdict(True, budget.limit, budget.limit - 1, 0)
    assert tat == now + budget.interval_us


@given(budget=budgets(), now=readings, spent=st.integers(1, 50))
def test_a_full_bucket_holds_exactly_its_limit_and_retry_after_is_exact(
    budget: Budget, now: int, spent: int
) -> None:
    tat: int | None = None
    allowed = 0
    for _ in range(min(spent, budget.limit + 1)):
        verdict, new_tat = gcra(tat, now, budget)
        allowed += verdict.allowed
        tat = new_tat if new_tat is not None else tat
    assert allowed == min(spent, budget.limit)
    refused, _ = gcra(tat, now, budget)
    if allowed < budget.limit:
        assert refused.allowed
        return
    assert not refused.allowed and refused.retry_after_us == budget.interval_us
    # One microsecond early is refused; waiting exactly `retry_after` is enough.
    assert not gcra(tat, now + refused.retry_after_us - 1, budget)[0].allowed
    assert gcra(tat, now + refused.retry_after_us, budget)[0].allowed


class RedisKeys(NamedTuple):
    url: str
    client: redis.Redis
    prefix: str


@pytest.fixture(scope="module")
def redis_keys() -> Iterator[RedisKeys]:
    """The harness's Redis and a key prefix of this module's own, deleted afterwards."""
    if REDIS_URL is None:
        pytest.skip("Redis not configured (run through `make test`)")
    client = redis.Redis.from_url(REDIS_URL)
    keys = RedisKeys(REDIS_URL, client, f"oo:test-rl:{uuid.uuid4().hex[:8]}:")
    yield keys
    for key in client.scan_iter(match=f"{keys.prefix}*"):
        client.delete(key)
    client.close()


@st.composite
def timelines(draw: st.DrawFn) -> tuple[Budget, list[int]]:
    """A budget and the readings of a clock that mostly moves on, sometimes stays or steps back."""
    budget = draw(budgets())
    now = draw(readings)
    small = st.integers(0, 2 * budget.interval_us)
    step = st.just(0) | small | st.integers(0, 2 * budget.burst_us) | small.map(lambda d: -d)
    times = []
    for delta in draw(st.lists(step, min_size=1, max_size=25)):
        now = max(0, now + delta)
        times.append(now)
    return budget, times


KEYS = itertools.count()


@settings(max_examples=150)
@given(timeline=timelines())
@example(timeline=(Budget(1, 3600.0), [100_300_000, 100_300_000, 3_700_300_000]))
@example(timeline=(Budget(7, 60.0), [17 * 10**14] * 8 + [17 * 10**14 + 8_571_428]))
def test_python_and_the_redis_script_agree(
    redis_keys: RedisKeys, timeline: tuple[Budget, list[int]]
) -> None:
    budget, times = timeline
    clock = Clock()
    memory = MemoryStore(clock)
    shared = RedisStore(redis_keys.url, prefix=redis_keys.prefix, clock=clock)
    key = f"k{next(KEYS)}"
    try:
        for now in times:
            clock.now = now
            assert memory.check(key, budget) == shared.check(key, budget), f"at {now} µs"
    finally:
        shared.close()


def test_on_redis_clock_a_bucket_key_expires_once_full_again(redis_keys: RedisKeys) -> None:
    store = RedisStore(redis_keys.url, prefix=redis_keys.prefix)
    try:
        assert store.check("expiring", Budget(2, 10.0)).allowed
    finally:
        store.close()
    # One request of two per 10 s: the bucket is full again 5 s later.
    assert 0 < redis_keys.client.pttl(f"{redis_keys.prefix}expiring") <= 5_000


def test_checks_in_one_pipeline_answer_as_each_alone(redis_keys: RedisKeys) -> None:
    """`check_many`: the script once per check in one round trip, in order, each atomic; and a
    Redis that lost the script (a restart, SCRIPT FLUSH) is given it again."""
    clock = Clock()
    memory = MemoryStore(clock)
    shared = RedisStore(redis_keys.url, prefix=redis_keys.prefix, clock=clock)
    budget = Budget(3, 60.0)
    checks = [(key, budget) for key in ("a", "b", "a", "a", "a", "b")]
    try:
        redis_keys.client.script_flush()
        assert shared.check_many(checks) == [memory.check(key, b) for key, b in checks]
        assert [v.allowed for v in shared.check_many(checks[:2])] == [False, True]
    finally:
        shared.close()


def test_concurrent_checks_share_round_trips_and_spend_exactly_the_budget(
    redis_keys: RedisKeys,
) -> None:
    """Coroutines checking at once are answered from batches (`oo_group_commit_rows`, log
    `rate-limits`), and exactly the budget is allowed."""
    store = RedisStore(redis_keys.url, prefix=redis_keys.prefix)
    limiter = RateLimiter(store, {Bucket.SIGNALS: Budget(20, 3600.0)})
    person = Principal(f"crowd-{uuid.uuid4().hex[:6]}", "person", frozenset({Role.PERSON}))
    labels = {"log": "rate-limits"}
    batches = REGISTRY.get_sample_value("oo_group_commit_rows_count", labels) or 0.0

    async def one() -> bool:
        try:
            await limiter.check_async(Bucket.SIGNALS, person)
        except RateLimited:
            return False
        return True

    async def crowd() -> list[bool]:
        return list(await asyncio.gather(*(one() for _ in range(50))))

    try:
        allowed = asyncio.run(crowd())
    finally:
        limiter.close()
    assert sum(allowed) == 20
    # 50 checks, fewer round trips: the first batch holds one, the rest wait for the next.
    assert (REGISTRY.get_sample_value("oo_group_commit_rows_count", labels) or 0.0) - batches < 50


# --- over HTTP, on both backends ---------------------------------------------------------------


def test_flooding_signals_is_refused_with_retry_after(
    make_client: Callable[..., TestClient], backend: Backend
) -> None:
    client = signed_in(make_client(rate_limit_signals="3/minute"))
    clock = Clock()
    on_clock(client, backend, clock)
    replies = [client.post("/v1/signals", json=SIGNAL, headers=as_("ann")) for _ in range(3)]
    assert [r.status_code for r in replies] == [202, 202, 202]
    assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["2", "1", "0"]
    assert {r.headers["X-RateLimit-Limit"] for r in replies} == {"3"}

    clock.advance(0.25)
    refused = client.post("/v1/signals", json=SIGNAL, headers=as_("ann"))
    assert refused.status_code == 429
    # One request every 20 s: the next one is due 20 s after the first.
    assert refused.headers["Retry-After"] == "20"
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    error = refused.json()["error"]
    assert error["code"] == "TooManyRequests" == refused.headers["x-ms-error-code"]
    assert error["target"] == "signals"
    assert "rate limit `signals` of 3 requests per 60 s" in error["message"]

    # Another person's budget is their own; Ann's other routes spend the default bucket only.
    assert client.post("/v1/signals", json=SIGNAL, headers=as_("bob")).status_code == 202
    assert client.get("/v1/me", headers=as_("ann")).status_code == 200


def test_waiting_retry_after_is_enough(
    make_client: Callable[..., TestClient], backend: Backend
) -> None:
    client = signed_in(make_client(rate_limit_signals="2/2s"))
    clock = Clock()
    on_clock(client, backend, clock)
    for _ in range(2):
        client.post("/v1/signals", json=SIGNAL, headers=as_("ann")).raise_for_status()
    refused = client.post("/v1/signals", json=SIGNAL, headers=as_("ann"))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    clock.advance(float(refused.headers["Retry-After"]) - 1e-6)
    assert client.post("/v1/signals", json=SIGNAL, headers=as_("ann")).status_code == 429
    clock.advance(1e-6)
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


def test_recommend_spends_the_persons_default_budget(
    make_client: Callable[..., TestClient],
) -> None:
    # Recommend's hand-written handler (ADR 0018) spends the tips router's budget itself.
    client = signed_in(make_client(rate_limit_default="2/hour"))
    assert client.post("/v1/recommend").status_code == 401
    tips = [client.post("/v1/recommend", headers=as_("ann")) for _ in range(3)]
    assert [r.status_code for r in tips] == [200, 200, 429]
    assert [r.headers["X-RateLimit-Remaining"] for r in tips] == ["1", "0", "0"]
    assert tips[2].json()["error"]["target"] == "default"
    # The same budget, on the tips' routes FastAPI serves and on the other routers.
    reaction = {"event_id": tips[0].json()["event_id"], "reaction": "later"}
    assert client.post("/v1/feedback", json=reaction, headers=as_("ann")).status_code == 429
    assert client.get("/v1/me", headers=as_("ann")).status_code == 429
    assert client.post("/v1/recommend", headers=as_("bob")).status_code == 200


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
    clock = Clock()
    on_clock(first, backend, clock)
    on_clock(second, backend, clock)
    replies = [
        api.post("/v1/signals", json=SIGNAL, headers=as_("ann"))
        for api in (first, second, first, second)
    ]
    assert [r.headers["X-RateLimit-Remaining"] for r in replies] == ["3", "2", "1", "0"]
    assert first.post("/v1/signals", json=SIGNAL, headers=as_("ann")).status_code == 429
    refused = second.post("/v1/signals", json=SIGNAL, headers=as_("ann"))
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "900"


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
