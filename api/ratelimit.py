"""Rate limits per principal: GCRA buckets in Redis (shared by every api process) or in memory.

A budget such as `30/minute` lets a principal send 30 requests at once and then one every two
seconds: the generic cell rate algorithm (GCRA, a token bucket that stores one timestamp) keeps,
per (bucket, principal), the theoretical arrival time `tat` of the next request. A request at
`now` is allowed when `tat + interval - limit * interval <= now`, and then moves `tat` on by
one interval; otherwise it is refused and may retry after the difference. Times are whole
microseconds (`api.budget`), so the Python and Lua versions agree exactly at any clock value.

With `OO_REDIS_URL` the check is one Lua script, atomic on the Redis server and timed by the
server's clock, so several api processes share each principal's budget. Without Redis every
process keeps its own budgets in memory (the embedded default is one process). When Redis
cannot be reached the limiter fails open: the request is served, logged and counted in
`oo_rate_limit_errors_total`; a limiter must never turn a Redis outage into an api outage.

Routes opt in with `dependencies=[Depends(limited(Bucket.SIGNALS))]` (or on a router). The
dependency builds on the principal dependencies, so a request without valid credentials is
refused with 401 before it can spend anyone's budget. The local single-user principal (the
machine's owner, loopback only) is not limited.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Protocol

import redis
from fastapi import Request
from prometheus_client import Counter

from api.auth.principal import Principal
from api.budget import US, Budget
from api.deps import IntegratorDep, PrincipalDep
from api.errors import ApiError
from api.settings import Settings
from bandit.store import GroupCommit

log = logging.getLogger(__name__)

RATE_LIMITED = Counter(
    "oo_rate_limited_total", "Requests refused with 429 by a rate limit", ["bucket"]
)
LIMIT_ERRORS = Counter(
    "oo_rate_limit_errors_total", "Rate-limit checks skipped because the store failed (fail open)"
)

STATE_KEY = "rate_limit"
"""Where the last check's `Verdict` is left on `request.state` for the response headers."""


class Bucket(StrEnum):
    DEFAULT = "default"
    """Every route of a signed-in principal (people, experimenters, analysts)."""
    SIGNALS = "signals"
    """`POST /v1/signals`, on top of the default: flooding signals is refused early."""
    PERSONALIZER = "personalizer"
    """The Personalizer-compatible routes, per subscription key."""


@dataclass(frozen=True, slots=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    retry_after_us: int
    """Microseconds until one more request would be allowed (0 when allowed)."""

    @property
    def retry_after(self) -> float:
        """Seconds until one more request would be allowed (0 when allowed)."""
        return self.retry_after_us / US

    @property
    def retry_after_header(self) -> str:
        # Whole seconds, rounded up: a client that waits exactly this long is served.
        return str(max(1, -(-self.retry_after_us // US)))


def gcra(tat: int | None, now: int, budget: Budget) -> tuple[Verdict, int | None]:
    """The verdict for a request at `now`, and the new `tat` to store (None when refused).

    `tat` and `now` are microseconds on one clock; integers, so the first request of any budget
    is allowed at any clock value (`interval_us <= burst_us`). `GCRA_SCRIPT` is this function.
    """
    tat = now if tat is None or tat < now else tat
    new_tat = tat + budget.interval_us
    allow_at = new_tat - budget.burst_us
    if allow_at > now:
        return Verdict(False, budget.limit, 0, allow_at - now), None
    remaining = (now - allow_at) // budget.interval_us
    return Verdict(True, budget.limit, remaining, 0), new_tat


def monotonic_us() -> int:
    return time.monotonic_ns() // 1000


Check = tuple[str, Budget]
"""(key, budget): one request to spend."""


class Store(Protocol):
    blocking: bool
    """Whether `check` waits on the network (then checks are batched on one thread, not run on
    the event loop: `RateLimiter.check_async`)."""

    def check(self, key: str, budget: Budget) -> Verdict: ...

    def check_many(self, checks: Sequence[Check]) -> list[Verdict]: ...

    def close(self) -> None: ...


class MemoryStore:
    """One process's budgets. Entries whose bucket is full again are dropped as it grows.

    `clock` reads whole microseconds (a monotonic clock by default).
    """

    blocking = False  # a dict under a lock held for microseconds: fine on the event loop

    def __init__(self, clock: Callable[[], int] = monotonic_us, max_keys: int = 100_000):
        self._clock = clock
        self._max_keys = max_keys
        self._tats: dict[str, int] = {}
        self._lock = threading.Lock()

    def check(self, key: str, budget: Budget) -> Verdict:
        with self._lock:
            now = self._clock()
            verdict, new_tat = gcra(self._tats.get(key), now, budget)
            if new_tat is not None:
                self._tats[key] = new_tat
                if len(self._tats) > self._max_keys:
                    self._tats = {k: t for k, t in self._tats.items() if t > now}
            return verdict

    def check_many(self, checks: Sequence[Check]) -> list[Verdict]:
        return [self.check(key, budget) for key, budget in checks]

    def close(self) -> None:
        self._tats.clear()


# `gcra` on Redis. KEYS[1]: the bucket key. ARGV: limit, `Budget.interval_us`, `.burst_us` and
# optionally `now`; times in whole microseconds, which Lua's doubles hold exactly (below 2**53).
# Without `now` the clock is Redis' own and the key expires once its bucket is full again; Redis
# can only expire on its own clock, so with a caller's `now` (tests) the key is kept.
# Returns {allowed, limit, remaining, retry_after_us}.
GCRA_SCRIPT = """
local limit = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local burst = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
if now == nil then
  local clock = redis.call('TIME')
  now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
end
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + interval
local allow_at = new_tat - burst
if allow_at > now then
  return {0, limit, 0, allow_at - now}
end
if ARGV[4] == nil then
  redis.call('SET', KEYS[1], string.format('%d', new_tat), 'PX',
             math.max(1, math.ceil((new_tat - now) / 1000)))
else
  redis.call('SET', KEYS[1], string.format('%d', new_tat))
end
-- floor of a division of doubles can land one off near a whole quotient: correct it exactly
local spare = now - allow_at
local remaining = math.floor(spare / interval)
if remaining * interval > spare then
  remaining = remaining - 1
elseif (remaining + 1) * interval <= spare then
  remaining = remaining + 1
end
return {1, limit, remaining, 0}
"""
GCRA_SHA = hashlib.sha1(GCRA_SCRIPT.encode()).hexdigest()
"""The name Redis knows the script by (EVALSHA), once loaded."""


class RedisStore:
    """Budgets shared by every process through one atomic script, timed by Redis' clock.

    After a failure Redis is not asked again for `cooldown` seconds (requests are allowed
    meanwhile), so an unreachable Redis costs one timeout per cooldown, not one per request.
    `clock` (whole microseconds) replaces Redis' clock; tests use it to choose the time.
    """

    blocking = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "oo:rl:",
        timeout: float = 0.25,
        cooldown: float = 1.0,
        clock: Callable[[], int] | None = None,
    ) -> None:
        self._client = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout
        )
        self._prefix = prefix
        self._cooldown = cooldown
        self._skip_until = 0.0
        self._clock = clock

    def check(self, key: str, budget: Budget) -> Verdict:
        return self.check_many([(key, budget)])[0]

    def check_many(self, checks: Sequence[Check]) -> list[Verdict]:
        """The verdicts of `checks`, in order, from one round trip: the script once per check
        in a pipeline (atomic per check, as each is alone)."""
        if time.monotonic() < self._skip_until:
            LIMIT_ERRORS.inc(len(checks))
            return [_unchecked(budget) for _, budget in checks]
        try:
            answers = self._run(checks)
        except redis.RedisError as exc:
            self._skip_until = time.monotonic() + self._cooldown
            LIMIT_ERRORS.inc(len(checks))
            log.warning("rate limits not checked, Redis failed: %s", type(exc).__name__)
            return [_unchecked(budget) for _, budget in checks]
        return [
            Verdict(bool(allowed), int(limit), int(remaining), int(retry))
            for allowed, limit, remaining, retry in answers
        ]

    def _run(self, checks: Sequence[Check]) -> list[list[int]]:
        """The script's answers; loads it once more if Redis lost it (a restart, SCRIPT FLUSH)."""
        for _ in range(2):
            pipe = self._client.pipeline(transaction=False)
            for key, budget in checks:
                args = [budget.limit, budget.interval_us, budget.burst_us]
                if self._clock is not None:
                    args.append(self._clock())
                pipe.evalsha(GCRA_SHA, 1, self._prefix + key, *args)
            answers = pipe.execute(raise_on_error=False)
            if not any(isinstance(a, redis.exceptions.NoScriptError) for a in answers):
                break
            self._client.execute_command("SCRIPT", "LOAD", GCRA_SCRIPT)
        for answer in answers:
            if isinstance(answer, Exception):
                raise answer
        return answers

    def close(self) -> None:
        self._client.close()


def _unchecked(budget: Budget) -> Verdict:
    """What a check the store failed answers: allowed (the limiter fails open)."""
    return Verdict(True, budget.limit, budget.limit, 0)


class RateLimited(ApiError):
    status = 429
    code = "TooManyRequests"

    def __init__(self, bucket: Bucket, budget: Budget, verdict: Verdict) -> None:
        super().__init__(
            f"rate limit `{bucket}` of {budget.limit} requests per {budget.period:g} s "
            f"exceeded; retry after {verdict.retry_after_header} s",
            target=bucket.value,
        )
        self.headers = {
            "Retry-After": verdict.retry_after_header,
            "X-RateLimit-Limit": str(verdict.limit),
            "X-RateLimit-Remaining": "0",
        }


class RateLimiter:
    """The budgets of each bucket, checked against one store."""

    def __init__(self, store: Store, budgets: dict[Bucket, Budget | None]) -> None:
        self.store = store
        self.budgets = budgets
        # A store that waits on the network is asked from one thread, the checks waiting at
        # that moment in one round trip (the group-commit machinery, ADR 0013): no worker
        # thread per request, and the event loop woken once per batch. Its thread starts with
        # the first check, so a store that never waits never starts one.
        self._batches: GroupCommit[Check, Verdict] = GroupCommit(
            self._check_many, name="rate-limits"
        )

    def _check_many(self, checks: Sequence[Check]) -> list[Verdict]:
        return self.store.check_many(checks)  # the store of the moment (tests replace it)

    def applies(self, bucket: Bucket, principal: Principal) -> bool:
        """Whether `check` spends anything (`bucket` is on and `principal` is limited)."""
        return self.budgets.get(bucket) is not None and principal.kind != "local"

    def check(self, bucket: Bucket, principal: Principal) -> Verdict | None:
        """None when `bucket` is off or `principal` is not limited; raises RateLimited."""
        budget = self.budgets.get(bucket)
        if budget is None or principal.kind == "local":
            return None
        return _judged(bucket, budget, self.store.check(f"{bucket}:{principal.id}", budget))

    async def check_async(self, bucket: Bucket, principal: Principal) -> Verdict | None:
        """`check` for the event loop: a store that waits on the network is awaited in a
        batch, never waited for on the loop."""
        budget = self.budgets.get(bucket)
        if budget is None or principal.kind == "local" or not self.store.blocking:
            return self.check(bucket, principal)
        verdict = await self._batches.write_async((f"{bucket}:{principal.id}", budget))
        return _judged(bucket, budget, verdict)

    def close(self) -> None:
        self.store.close()


def _judged(bucket: Bucket, budget: Budget, verdict: Verdict) -> Verdict:
    """`verdict`, or RateLimited when it refuses."""
    if not verdict.allowed:
        RATE_LIMITED.labels(bucket.value).inc()
        raise RateLimited(bucket, budget, verdict)
    return verdict


def rate_limiter(settings: Settings) -> RateLimiter:
    """The budgets of `settings`, in Redis when `OO_REDIS_URL` is set, else in memory."""
    budgets = {
        Bucket.DEFAULT: Budget.parse(settings.rate_limit_default),
        Bucket.SIGNALS: Budget.parse(settings.rate_limit_signals),
        Bucket.PERSONALIZER: Budget.parse(settings.rate_limit_personalizer),
    }
    store: Store = RedisStore(settings.redis_url) if settings.redis_url else MemoryStore()
    return RateLimiter(store, budgets)


async def spend(request: Request, bucket: Bucket, principal: Principal) -> None:
    """Spend one request of `bucket` for `principal`; the verdict is left on the request for
    the rate-limit headers."""
    limiter: RateLimiter = request.app.state.rate_limiter
    verdict = await limiter.check_async(bucket, principal)
    if verdict is not None:
        previous: Verdict | None = getattr(request.state, STATE_KEY, None)
        # Headers report the tightest bucket the request went through.
        if previous is None or verdict.remaining < previous.remaining:
            setattr(request.state, STATE_KEY, verdict)


@cache
def limited(bucket: Bucket) -> Callable[..., Awaitable[None]]:
    """A dependency spending one request of `bucket` for the request's principal.

    Cached per bucket, so attaching the same bucket on a router and a route spends once.
    """
    if bucket is Bucket.PERSONALIZER:

        async def check_key(request: Request, integrator: IntegratorDep) -> None:
            await spend(request, bucket, request.state.principal)

        check_key.__name__ = f"rate_limit_{bucket}"
        return check_key

    async def check(request: Request, principal: PrincipalDep) -> None:
        await spend(request, bucket, principal)

    check.__name__ = f"rate_limit_{bucket}"
    return check
