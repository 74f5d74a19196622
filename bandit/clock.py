"""Time in UTC: the clock, and the one conversion to UTC every package uses.

A `datetime` holds years 1 to 9999 in its own offset, so an instant written near either end
with an offset can have no UTC spelling at all: `0001-01-01T00:00+14:00` is ten hours before
year 1 in UTC, `9999-12-31T23:59-14:00` is in year 10000. Python raises OverflowError on the
conversion; `as_utc` refuses such an instant with a ValueError that names where it came from,
so that every caller (an API field, a CLI option, a DSJSON line) reports it as bad input.
"""

from __future__ import annotations

from datetime import UTC, datetime

from bandit.errors import DomainError


def utcnow() -> datetime:
    return datetime.now(UTC)


class OutOfRange(DomainError, ValueError):
    """An instant outside what a `datetime` can hold in UTC (years 1 to 9999).

    `name` (also its `target`) is the field or option it came from; `reason` is the message
    without it, for callers that name the field their own way (the API's validation errors).
    """

    def __init__(self, name: str, moment: datetime) -> None:
        self.name = name
        self.reason = f"is out of range in UTC (got {moment.isoformat()})"
        super().__init__(f"`{name}` {self.reason}", target=name)


def as_utc(moment: datetime, name: str) -> datetime:
    """`moment` as an aware UTC datetime; a naive one is taken to be in UTC already.

    Raises `OutOfRange` (a ValueError) naming `name` when the instant has no UTC representation.
    Callers that must refuse naive times check `tzinfo` first.

    >>> from datetime import timedelta, timezone
    >>> as_utc(datetime(2026, 11, 25, 10, tzinfo=timezone(timedelta(hours=1))), "start")
    datetime.datetime(2026, 11, 25, 9, 0, tzinfo=datetime.timezone.utc)
    >>> as_utc(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=14))), "start")
    Traceback (most recent call last):
    ...
    bandit.clock.OutOfRange: `start` is out of range in UTC (got 0001-01-01T00:00:00+14:00)
    """
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise OutOfRange(name, moment) from None
