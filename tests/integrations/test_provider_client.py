"""The shared provider client, through a minimal provider of its own on the local server.

`Items` is the least a provider built on `ProviderClient` can be: one endpoint, one parser.
Its answers are scripted on the loopback server of tests/integrations/providers.py; time is an
injected clock, so cache expiry, Retry-After and the deadline are checked without waiting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from integrations.provider_client import Deadline, ProviderClient
from integrations.providers import ProviderUnavailable, RateLimited, TokenRevoked
from integrations.vault import ProviderToken
from tests.conftest import free_port
from tests.integrations.conftest import Reply
from tests.integrations.providers import (  # noqa: F401 - the fixture
    FakeProviders,
    providers_fixture,
)

ITEMS = "/example/v1/items"
SECRET = "example-access-7f3e9a1c"
TOKEN = ProviderToken(SECRET)
ALICE = "person:alice"
BOB = "person:bob"


class Clock:
    def __init__(self) -> None:
        self.now = 500.0

    def __call__(self) -> float:
        return self.now


def parse_items(body: Any) -> tuple[str, ...]:
    if not isinstance(body, dict) or not isinstance(body.get("items"), list):
        raise ValueError("`items` must be a list")
    return tuple(str(item) for item in body["items"])


class Items(ProviderClient[tuple[str, ...]]):
    provider = "example"
    api_base = "https://example.invalid/v1"

    pages = 1
    on_page: Callable[[], None] | None = None

    def items(
        self,
        token: ProviderToken,
        *,
        principal: str,
        deadline_s: float = 5.0,
        usable: Callable[[tuple[str, ...]], bool] = lambda _: True,
    ) -> tuple[str, ...]:
        return self._fetch(
            token,
            principal=principal,
            deadline_s=deadline_s,
            ask=lambda deadline: self._pages(token, deadline),
            usable=usable,
        )

    def _pages(self, token: ProviderToken, deadline: Deadline) -> tuple[str, ...]:
        found: list[str] = []
        for _ in range(self.pages):
            found.extend(self._request("GET", "/items", token, deadline, parse=parse_items))
            if self.on_page is not None:
                self.on_page()
        return tuple(found)


def ok(*items: str) -> Reply:
    return Reply(200, {"items": list(items)})


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(providers: FakeProviders, clock: Clock) -> Iterator[Items]:
    items = Items(base_url=f"{providers.url}/example/v1/", clock=clock)
    yield items
    items.close()


def asked(providers: FakeProviders) -> int:
    return len(providers.calls_to(ITEMS))


# ------------------------------------------------------------------------------------ cache


def test_a_cached_answer_expires_on_the_clients_clock(
    providers: FakeProviders, client: Items, clock: Clock
) -> None:
    providers.script(ITEMS, ok("a"), ok("b"))
    assert client.items(TOKEN, principal=ALICE) == ("a",)
    clock.now += 59.5
    assert client.items(TOKEN, principal=ALICE) == ("a",)
    assert asked(providers) == 1
    clock.now += 0.5  # exactly the time to live: stale
    assert client.items(TOKEN, principal=ALICE) == ("b",)
    assert asked(providers) == 2
    assert providers.calls_to(ITEMS)[0].authorization == f"Bearer {SECRET}"


def test_the_cache_is_per_person_and_per_token(providers: FakeProviders, client: Items) -> None:
    providers.script(ITEMS, ok("alice"), ok("bob"), ok("reconnected"))
    assert client.items(TOKEN, principal=ALICE) == ("alice",)
    assert client.items(TOKEN, principal=BOB) == ("bob",)
    assert client.items(ProviderToken("another-token"), principal=ALICE) == ("reconnected",)
    assert client.items(ProviderToken("another-token"), principal=ALICE) == ("reconnected",)
    assert asked(providers) == 3


def test_a_fresh_answer_the_caller_cannot_use_is_asked_again(
    providers: FakeProviders, client: Items
) -> None:
    providers.script(ITEMS, ok("short"), ok("long", "enough"))
    client.items(TOKEN, principal=ALICE)
    wider = client.items(TOKEN, principal=ALICE, usable=lambda cached: len(cached) > 1)
    assert wider == ("long", "enough")
    assert client.items(TOKEN, principal=ALICE) == ("long", "enough"), "the wider one is kept"
    assert asked(providers) == 2


def test_no_time_to_live_means_no_cache(providers: FakeProviders, clock: Clock) -> None:
    providers.script(ITEMS, ok("a"), ok("b"))
    client = Items(base_url=f"{providers.url}/example/v1", clock=clock, cache_ttl_s=0)
    assert client.items(TOKEN, principal=ALICE) == ("a",)
    assert client.items(TOKEN, principal=ALICE) == ("b",)
    client.close()


def test_failures_are_not_cached_and_forget_drops_answers(
    providers: FakeProviders, client: Items
) -> None:
    providers.script(ITEMS, Reply(503, {}), ok("a"), ok("b"))
    with pytest.raises(ProviderUnavailable):
        client.items(TOKEN, principal=ALICE)
    assert client.items(TOKEN, principal=ALICE) == ("a",)
    client.forget(ALICE)
    assert client.items(TOKEN, principal=ALICE) == ("b",)


def test_settings_are_checked(providers: FakeProviders, client: Items) -> None:
    with pytest.raises(ValueError, match=r"`cache_ttl_s` must be >= 0 \(got -1\)"):
        Items(cache_ttl_s=-1)
    with pytest.raises(ValueError, match=r"`deadline_s` must be positive \(got 0\)"):
        client.items(TOKEN, principal=ALICE, deadline_s=0)
    assert asked(providers) == 0


# ---------------------------------------------------------------------------------- backoff


def test_retry_after_is_honoured_per_person_without_asking(
    providers: FakeProviders, client: Items, clock: Clock
) -> None:
    providers.script(ITEMS, Reply(429, {}, {"Retry-After": "30"}), ok("bob"), ok("alice"))
    with pytest.raises(RateLimited, match="example rate limit: retry after 30s") as first:
        client.items(TOKEN, principal=ALICE)
    assert (first.value.retry_after, first.value.provider) == (30, "example")

    clock.now += 29
    with pytest.raises(RateLimited) as waiting:
        client.items(TOKEN, principal=ALICE)
    assert waiting.value.retry_after == pytest.approx(1)
    assert asked(providers) == 1, "nothing asked while the provider wants us to wait"
    assert client.items(TOKEN, principal=BOB) == ("bob",), "only alice waits"

    clock.now += 1
    assert client.items(TOKEN, principal=ALICE) == ("alice",)
    assert asked(providers) == 3


def test_forget_ends_the_wait(providers: FakeProviders, client: Items) -> None:
    providers.script(ITEMS, Reply(429, {}, {"Retry-After": "600"}), ok("a"))
    with pytest.raises(RateLimited):
        client.items(TOKEN, principal=ALICE)
    client.forget(ALICE)  # reconnected: a new token, a new start
    assert client.items(TOKEN, principal=ALICE) == ("a",)


def test_a_429_on_a_later_page_is_honoured_too(
    providers: FakeProviders, client: Items, clock: Clock
) -> None:
    client.pages = 2
    providers.script(ITEMS, ok("a"), Reply(429, {}, {"Retry-After": "5"}), ok("a"), ok("b"))
    with pytest.raises(RateLimited):
        client.items(TOKEN, principal=ALICE)
    with pytest.raises(RateLimited):
        client.items(TOKEN, principal=ALICE)
    assert asked(providers) == 2
    clock.now += 5
    assert client.items(TOKEN, principal=ALICE) == ("a", "b")


# --------------------------------------------------------------------------------- deadline


def test_every_request_of_a_fetch_shares_one_deadline(
    providers: FakeProviders, client: Items, clock: Clock
) -> None:
    client.pages = 3

    def slow_page() -> None:
        clock.now += 0.2  # each page takes 0.2 s of the client's clock

    client.on_page = slow_page
    providers.script(ITEMS, ok("a"), ok("b"), ok("c"))
    with pytest.raises(ProviderUnavailable, match=r"example did not answer within 0\.3s"):
        client.items(TOKEN, principal=ALICE, deadline_s=0.3)
    assert asked(providers) == 2, "no request starts once the deadline has run out"


def test_a_slow_answer_is_cut_at_the_deadline(providers: FakeProviders, client: Items) -> None:
    providers.script(ITEMS, Reply(200, {"items": []}, delay_s=2.0))
    with pytest.raises(ProviderUnavailable, match=r"example did not answer within 0\.2s"):
        client.items(TOKEN, principal=ALICE, deadline_s=0.2)


# ----------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("reply", "error", "match"),
    [
        (Reply(401, {"error": "invalid"}), TokenRevoked, r"example refused the token \(401\)"),
        (Reply(403, {"error": "forbidden"}), TokenRevoked, r"example refused the token \(403\)"),
        (Reply(500, {}), ProviderUnavailable, "example answered 500 to GET /items"),
        (
            Reply(302, None, {"Location": "https://elsewhere.invalid/"}),
            ProviderUnavailable,
            "example answered 302 to GET /items",
        ),
        (Reply(404, {}), ProviderUnavailable, "example answered 404 to GET /items"),
        (Reply(200), ProviderUnavailable, "example answered 200 without a JSON body"),
        (
            Reply(200, {"things": []}),
            ProviderUnavailable,
            "example answer unreadable: `items` must be a list",
        ),
    ],
    ids=["401", "403", "500", "redirect", "404", "empty", "shape"],
)
def test_answers_map_to_the_shared_errors(
    providers: FakeProviders,
    client: Items,
    reply: Reply,
    error: type[Exception],
    match: str,
) -> None:
    providers.script(ITEMS, reply)
    with pytest.raises(error, match=match) as caught:
        client.items(TOKEN, principal=ALICE)
    assert SECRET not in str(caught.value)
    assert asked(providers) == 1, "redirects are not followed"


def test_an_unreachable_provider_is_unavailable(clock: Clock) -> None:
    client = Items(base_url=f"http://127.0.0.1:{free_port()}/v1", clock=clock)
    with pytest.raises(ProviderUnavailable, match=r"example is unreachable \(ConnectError\)"):
        client.items(TOKEN, principal=ALICE)
    client.close()


def test_repr_shows_neither_tokens_nor_people(providers: FakeProviders, client: Items) -> None:
    providers.script(ITEMS, ok("a"))
    client.items(TOKEN, principal=ALICE)
    text = repr(client)
    assert text.startswith("Items(") and "cached=1" in text
    assert SECRET not in text and ALICE not in text
