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

from bandit.clock import as_utc, utcnow
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


def retry_after_seconds(value: str | None, now: datetime) -> float | None:
    """Seconds a `Retry-After` header asks to wait, at least 0: delta-seconds or an HTTP date
    (RFC 9110; a date without a zone is UTC). None when absent or unreadable.

    The provider clients and the notifier's push sender both read the header through this.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = as_utc(parsedate_to_datetime(text), "Retry-After")
        except (TypeError, ValueError):  # OutOfRange is a ValueError too
            return None
        seconds = (moment - now).total_seconds()
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def retry_after(value: str | None, *, now: datetime | None = None) -> float:
    """Seconds to wait before asking a provider again: the header's, at most an hour; a minute
    when it gave none we can read."""
    seconds = retry_after_seconds(value, now or utcnow())
    return DEFAULT_RETRY_AFTER_S if seconds is None else min(seconds, MAX_RETRY_AFTER_S)
