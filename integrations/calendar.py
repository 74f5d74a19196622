"""Google Calendar, read-only: a person's free/busy as context features.

The client asks Calendar API v3's ``POST /freeBusy`` for the person's primary calendar, from the
start of their local day to the end of it (at least two hours ahead), and reads the documented
answer ``{"calendars": {"primary": {"busy": [{"start", "end"}], "errors": [...]}}}``. Only busy
intervals come back, never titles or attendees; they stay in a short per-principal cache and are
never stored. How Google is asked (HTTP, the deadline, errors, backoff, the cache) is Todoist's
too (`integrations.provider_client`): 401/403 raise `TokenRevoked`, 429 `RateLimited` (with
its Retry-After honoured), anything else that goes wrong `ProviderUnavailable`.

The model sees three features in the ``calendar`` namespace: busy in the next two hours, the
number of meetings today (bucketed) and the minutes to the next free slot (bucketed).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from bandit.events import FeatureObject
from integrations.provider_client import DEFAULT_DEADLINE_S, Deadline, ProviderClient
from integrations.vault import ProviderToken

logger = logging.getLogger(__name__)

PROVIDER = "google-calendar"
API_BASE = "https://www.googleapis.com/calendar/v3"
SCOPE = "https://www.googleapis.com/auth/calendar.freebusy"
SOON = timedelta(hours=2)
LOOKAHEAD = timedelta(hours=3)
"""How far past now an answer reaches at least: two hours for `busy_2h`, plus slack so a
cached answer still covers them for its whole time to live."""


@dataclass(frozen=True, slots=True)
class Busy:
    start: datetime
    end: datetime


@dataclass(frozen=True, slots=True)
class FreeBusy:
    """Busy intervals of the primary calendar between `start` and `end`, sorted and merged."""

    start: datetime
    end: datetime
    busy: tuple[Busy, ...]


def parse_free_busy(body: Any, calendar: str = "primary") -> list[Busy]:
    """Busy intervals from a freeBusy answer; ValueError (naming the field) on another shape."""
    if not isinstance(body, dict) or not isinstance(body.get("calendars"), dict):
        raise ValueError("`calendars` must be an object")
    entry = body["calendars"].get(calendar)
    if not isinstance(entry, dict):
        raise ValueError(f"`calendars.{calendar}` is missing")
    errors = entry.get("errors")
    if errors:
        reasons = [e.get("reason", "?") for e in errors if isinstance(e, dict)]
        raise ValueError(f"`calendars.{calendar}.errors`: {', '.join(map(str, reasons))}")
    raw = entry.get("busy", [])
    if not isinstance(raw, list):
        raise ValueError(f"`calendars.{calendar}.busy` must be a list")
    busy = []
    for index, item in enumerate(raw):
        try:
            start = datetime.fromisoformat(item["start"])
            end = datetime.fromisoformat(item["end"])
        except (TypeError, KeyError, ValueError):
            raise ValueError(
                f"`calendars.{calendar}.busy[{index}]` needs RFC 3339 `start` and `end`"
            ) from None
        if start.tzinfo is None or end.tzinfo is None:
            raise ValueError(f"`calendars.{calendar}.busy[{index}]` must carry an offset")
        if end > start:
            busy.append(Busy(start.astimezone(UTC), end.astimezone(UTC)))
    return _merged(busy)


def _merged(busy: Sequence[Busy]) -> list[Busy]:
    merged: list[Busy] = []
    for interval in sorted(busy, key=lambda b: b.start):
        if merged and interval.start <= merged[-1].end:
            last = merged[-1]
            merged[-1] = Busy(last.start, max(last.end, interval.end))
        else:
            merged.append(interval)
    return merged


def window(now: datetime, tz: tzinfo) -> tuple[datetime, datetime]:
    """The span asked for: the person's local day, stretched to cover the next three hours."""
    if now.tzinfo is None:
        raise ValueError("`now` must be timezone-aware")
    local = now.astimezone(tz)
    midnight = datetime.combine(local.date(), datetime.min.time(), tzinfo=tz)
    day_end = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=tz)
    return midnight.astimezone(UTC), max(day_end.astimezone(UTC), now.astimezone(UTC) + LOOKAHEAD)


def calendar_features(free_busy: FreeBusy, now: datetime, tz: tzinfo) -> FeatureObject:
    """The ``calendar`` namespace for this moment.

    ``busy_2h``: a busy interval overlaps the next two hours. ``meetings``: busy intervals that
    touch the person's local today, bucketed 0 / 1 / 2-3 / 4+. ``free_in``: minutes until the
    person is next free, bucketed (0 when free now; ``beyond`` when busy past the window).
    """
    moment = now.astimezone(UTC)
    day_start, _ = window(now, tz)
    local_day_end = day_start.astimezone(tz) + timedelta(days=1)
    busy = free_busy.busy
    busy_soon = any(b.start < moment + SOON and b.end > moment for b in busy)
    today = sum(1 for b in busy if b.end > day_start and b.start < local_day_end)
    free_at = _free_at(busy, moment)
    minutes = (free_at - moment).total_seconds() / 60
    return {
        "calendar": {
            "busy_2h": busy_soon,
            "meetings": _meetings_bucket(today),
            "free_in": _free_bucket(minutes, free_at >= free_busy.end),
        }
    }


def _free_at(busy: Sequence[Busy], moment: datetime) -> datetime:
    """The first free moment from `moment` on (intervals sorted and merged)."""
    free_at = moment
    for interval in busy:
        if interval.start <= free_at < interval.end:
            free_at = interval.end
    return free_at


def _meetings_bucket(count: int) -> str:
    if count <= 1:
        return str(count)
    return "2-3" if count <= 3 else "4+"


def _free_bucket(minutes: float, beyond: bool) -> str:
    if beyond:
        return "beyond"
    if minutes <= 0:
        return "now"
    for limit, label in ((15, "m0-15"), (60, "m15-60"), (120, "h1-2")):
        if minutes <= limit:
            return label
    return "h2+"


# ------------------------------------------------------------------------------------ client


class CalendarClient(ProviderClient[FreeBusy]):
    """Asks Google for a person's free/busy within a deadline, with a short per-principal cache.

    HTTP, deadline, errors, backoff and cache are `ProviderClient`'s; this asks for the window.
    Thread-safe: api workers share one client (kept on the services, closed on shutdown).
    """

    provider = PROVIDER
    api_base = API_BASE

    def free_busy(
        self,
        token: ProviderToken,
        *,
        principal: str,
        now: datetime,
        tz: tzinfo,
        deadline_s: float = DEFAULT_DEADLINE_S,
    ) -> FreeBusy:
        """Busy intervals of the person's primary calendar around `now`.

        Raises `TokenRevoked` (401/403), `RateLimited` (429, and until Retry-After has passed)
        or `ProviderUnavailable` (5xx, network, unreadable answer, `deadline_s` ran out).
        """
        start, end = window(now, tz)
        soon = now.astimezone(UTC) + SOON
        return self._fetch(
            token,
            principal=principal,
            deadline_s=deadline_s,
            ask=lambda deadline: self._ask(token, start, end, deadline),
            # A cached answer serves while it covers this local day and the next two hours.
            usable=lambda cached: cached.start == start and cached.end >= soon,
        )

    def _ask(
        self, token: ProviderToken, start: datetime, end: datetime, deadline: Deadline
    ) -> FreeBusy:
        body = {
            "timeMin": start.isoformat().replace("+00:00", "Z"),
            "timeMax": end.isoformat().replace("+00:00", "Z"),
            "timeZone": "UTC",
            "items": [{"id": "primary"}],
        }
        busy = self._request("POST", "/freeBusy", token, deadline, json=body, parse=parse_free_busy)
        return FreeBusy(start, end, tuple(busy))
