"""What every provider client shares: its error model and the Retry-After reading.

The client itself (HTTP, deadline, backoff, cache) is `integrations.provider_client`.

A recommend never fails because of a provider. Each client raises one of three errors, and the
caller skips that source for this decision:

- `TokenRevoked`: 401/403, or a refresh the provider refused; the integration is marked
  needs_reconnect until the person connects again.
- `RateLimited`: 429; the client does not ask again before Retry-After has passed.
- `ProviderUnavailable`: 5xx, a network error, an unreadable answer, or the deadline ran out.

Messages name the provider and the status, never a token, a code or personal data.
"""

from __future__ import annotations

import math
from datetime import datetime
from email.utils import parsedate_to_datetime

from bandit.errors import DomainError, Kind

DEFAULT_RETRY_AFTER_S = 60.0
MAX_RETRY_AFTER_S = 3600.0


class ProviderError(DomainError):
    """A provider could not be used for this request (its data is left out; ask later)."""

    kind = Kind.UNAVAILABLE


class TokenRevoked(ProviderError):
    """The token was revoked, expired without a refresh, or is invalid: reconnect."""


class RateLimited(ProviderError):
    """429: the provider asked us to wait `retry_after` seconds before asking again."""

    def __init__(self, retry_after: float, *, provider: str) -> None:
        super().__init__(f"{provider} rate limit: retry after {retry_after:.0f}s")
        self.retry_after = retry_after
        self.provider = provider


class ProviderUnavailable(ProviderError):
    """5xx, a timeout past the deadline, a network error or an unreadable answer."""


def retry_after(value: str | None, *, now: datetime | None = None) -> float:
    """Seconds to wait from a Retry-After header: delta-seconds or an HTTP date (RFC 9110)."""
    if value is None or not value.strip():
        return DEFAULT_RETRY_AFTER_S
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return DEFAULT_RETRY_AFTER_S
        current = now or datetime.now(moment.tzinfo)
        seconds = (moment - current).total_seconds()
    if not math.isfinite(seconds):
        return DEFAULT_RETRY_AFTER_S
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)
