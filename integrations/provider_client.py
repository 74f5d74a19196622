"""The client every live provider API is asked through: HTTP, deadline, errors, backoff, cache.

Todoist (`integrations.todoist`) and Google Calendar (`integrations.calendar`) subclass
`ProviderClient`; each keeps only its endpoint, its response parsing and its own quirks. What
asking a provider takes is written once, here:

- **HTTP**: one `httpx.Client` per provider, shared by the api's threads (its connections are
  kept alive), JSON, no redirects (one would carry the bearer token elsewhere), the person's
  token as a bearer header on each request.
- **Deadline** (ADR 0006): a fetch gets `deadline_s`; each request it makes waits at most the
  time left, so the pages of one fetch share one budget, and none starts once it has run out.
- **Errors** (`integrations.providers`): 401/403 `TokenRevoked`; 429 `RateLimited`, and after
  it that person's fetches raise it again, without asking, until Retry-After has passed; any
  other status, a timeout, a network error or an unreadable body `ProviderUnavailable`.
- **Cache**: what a fetch returned, per principal, for `cache_ttl_s` (60 s) on the client's
  clock, for at most `max_cached` principals (the least recently used go first). An entry is
  bound to a fingerprint of the token it was fetched with, so a reconnect never reads the old
  token's data. Failures are never cached.

Refreshing tokens is not here: it needs the vault and the OAuth registration, so
`integrations.connections.Integrations` refreshes an expiring token before a fetch and a
refused one once after it, the same way for every provider.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import httpx

from integrations.providers import ProviderUnavailable, RateLimited, TokenRevoked, retry_after
from integrations.vault import ProviderToken

T = TypeVar("T")
R = TypeVar("R")

CACHE_TTL_S = 60.0
MAX_CACHED_PRINCIPALS = 10_000
DEFAULT_DEADLINE_S = 0.3
"""`OO_PROVIDER_DEADLINE_MS`'s default; `Integrations` passes the time left of its own."""


@dataclass(frozen=True, slots=True)
class Deadline:
    """When one fetch must be done, on the client's clock, and its budget (for messages)."""

    at: float
    seconds: float


@dataclass(frozen=True, slots=True)
class _Cached(Generic[T]):
    expires: float
    fingerprint: bytes
    value: T


def _always(_value: object) -> bool:
    return True


class ProviderClient(Generic[T]):
    """One provider's API, asked within a deadline, with a short per-principal cache of `T`.

    A subclass names its `provider` and `api_base` and builds its fetch from `_fetch` (cache,
    backoff, deadline) and `_request` (one HTTP call, errors mapped). Thread-safe: api workers
    share one client (kept on the services, closed on shutdown).
    """

    provider: ClassVar[str]
    """The provider's name, as in `Integrations.PROVIDERS` and in every message."""
    api_base: ClassVar[str]
    """The production API root; `base_url` replaces it (tests, staging)."""

    def __init__(
        self,
        *,
        base_url: str | None = None,
        cache_ttl_s: float = CACHE_TTL_S,
        max_cached: int = MAX_CACHED_PRINCIPALS,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if cache_ttl_s < 0:
            raise ValueError(f"`cache_ttl_s` must be >= 0 (got {cache_ttl_s})")
        self.cache_ttl_s = cache_ttl_s
        self.max_cached = max_cached
        self.clock = clock
        self._http = httpx.Client(
            base_url=(base_url or self.api_base).rstrip("/"),
            transport=transport,
            headers={"Accept": "application/json", "User-Agent": "oO"},
            follow_redirects=False,
        )
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, _Cached[T]] = OrderedDict()
        self._backoff: dict[str, float] = {}
        """Per principal: the clock reading before which the provider must not be asked."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self._http.base_url)!r}, cached={len(self._cache)})"

    def close(self) -> None:
        self._http.close()

    def forget(self, principal: str) -> None:
        """Drop what is cached for `principal` (on connect, disconnect and erasure)."""
        with self._lock:
            self._cache.pop(principal, None)
            self._backoff.pop(principal, None)

    def _fetch(
        self,
        token: ProviderToken,
        *,
        principal: str,
        deadline_s: float,
        ask: Callable[[Deadline], T],
        usable: Callable[[T], bool] = _always,
    ) -> T:
        """What `ask` answers for `principal`, or the cached answer while it is fresh.

        A cached answer is used only for the same token and when `usable` accepts it (an
        answer can be fresh but cover too little). While a 429's Retry-After runs, raises
        `RateLimited` without asking; `ask` gets the deadline every request of it shares.
        """
        if not deadline_s > 0:
            raise ValueError(f"`deadline_s` must be positive (got {deadline_s})")
        now = self.clock()
        fingerprint = hashlib.sha256(token.access_token.encode()).digest()[:16]
        with self._lock:
            cached = self._cache.get(principal)
            if (
                cached
                and cached.expires > now
                and cached.fingerprint == fingerprint
                and usable(cached.value)
            ):
                self._cache.move_to_end(principal)
                return cached.value
            wait_until = self._backoff.get(principal, 0.0)
            if wait_until > now:
                raise RateLimited(wait_until - now, provider=self.provider)
        try:
            value = ask(Deadline(now + deadline_s, deadline_s))
        except RateLimited as exc:
            with self._lock:
                self._backoff[principal] = now + exc.retry_after
            raise
        with self._lock:
            self._backoff.pop(principal, None)
            if self.cache_ttl_s > 0:
                self._cache[principal] = _Cached(now + self.cache_ttl_s, fingerprint, value)
                self._cache.move_to_end(principal)
                while len(self._cache) > self.max_cached:
                    self._cache.popitem(last=False)
        return value

    def _request(
        self,
        method: str,
        path: str,
        token: ProviderToken,
        deadline: Deadline,
        *,
        parse: Callable[[Any], R],
        params: dict[str, str | int] | None = None,
        json: Any = None,
    ) -> R:
        """`parse` of the JSON body of a 200 answer to `method path`, within `deadline`.

        `parse` raises ValueError on a body of another shape. Raises `TokenRevoked`,
        `RateLimited` or `ProviderUnavailable` as the module docstring says; their messages
        name the provider and the status, never the token or the body.
        """
        remaining = deadline.at - self.clock()
        if remaining <= 0:
            raise ProviderUnavailable(
                f"{self.provider} did not answer within {deadline.seconds:g}s"
            )
        try:
            response = self._http.request(
                method,
                path,
                params=params,
                json=json,
                headers={"Authorization": f"Bearer {token.access_token}"},
                timeout=httpx.Timeout(remaining),
            )
        except httpx.TimeoutException:
            raise ProviderUnavailable(
                f"{self.provider} did not answer within {deadline.seconds:g}s"
            ) from None
        except httpx.TransportError as exc:
            raise ProviderUnavailable(
                f"{self.provider} is unreachable ({type(exc).__name__})"
            ) from None
        status = response.status_code
        if status in (401, 403):
            raise TokenRevoked(
                f"{self.provider} refused the token ({status}); the person must reconnect"
            )
        if status == 429:
            raise RateLimited(
                retry_after(response.headers.get("Retry-After")), provider=self.provider
            )
        if status != 200:
            # 5xx, or any other answer: the API is down or moved under us; skip the source.
            raise ProviderUnavailable(f"{self.provider} answered {status} to {method} {path}")
        try:
            body = response.json()
        except ValueError:
            raise ProviderUnavailable(f"{self.provider} answered 200 without a JSON body") from None
        try:
            return parse(body)
        except ValueError as exc:
            raise ProviderUnavailable(f"{self.provider} answer unreadable: {exc}") from None
