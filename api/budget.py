"""Rate budgets as settings spell them: `30/minute`, `5/10s`, `off` (used by api.ratelimit).

The limiter counts time in whole microseconds, in Python and in Redis' Lua alike, so that both
decide every request identically whatever the clock reads (floating-point seconds do not:
`(now + 3600) - 3600 > now` for one clock value in ten soon after boot).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

UNITS = {"s": 1, "second": 1, "m": 60, "minute": 60, "h": 3600, "hour": 3600, "day": 86400}
US = 1_000_000
"""Microseconds per second."""
MAX_PERIOD_US = 2**52
"""About 142 years. Redis' Lua numbers are doubles, exact up to 2**53: a stored arrival time
runs at most one period ahead of the clock (about 2**51 µs since 1970 this century)."""
BUDGET = re.compile(r"^\s*(?P<count>\d+)\s*/\s*(?P<every>\d*)\s*(?P<unit>[a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Budget:
    """`limit` requests per `period` seconds; a full bucket allows `limit` at once."""

    limit: int
    period: float

    def __post_init__(self) -> None:
        if self.limit < 1 or not 0 < self.period * US <= MAX_PERIOD_US:
            raise ValueError(
                f"a rate budget needs a positive count and a period of at most "
                f"{MAX_PERIOD_US // US // 86400} days; got {self.limit}/{self.period:g}s"
            )
        if self.interval_us < 1:
            raise ValueError(
                f"a rate budget allows at most one request per microsecond; "
                f"got {self.limit}/{self.period:g}s"
            )

    @property
    def interval_us(self) -> int:
        """Microseconds between two requests (the period's share, rounded down)."""
        return round(self.period * US) // self.limit

    @property
    def burst_us(self) -> int:
        """The time `limit` requests take, one per interval: the period in whole intervals, so
        that a full bucket holds exactly `limit` requests."""
        return self.limit * self.interval_us

    @classmethod
    def parse(cls, text: str) -> Budget | None:
        """`"30/minute"`, `"5/10s"`, `"1000/hour"`; `"off"` is no limit (None)."""
        if text.strip().lower() == "off":
            return None
        match = BUDGET.match(text.lower())
        if match is None or match["unit"] not in UNITS:
            raise ValueError(
                f"a rate budget reads `<count>/<unit>` with unit one of "
                f"{', '.join(UNITS)} (e.g. `30/minute`, `5/10s`) or `off`; got {text!r}"
            )
        count, every = int(match["count"]), int(match["every"] or 1)
        seconds = every * UNITS[match["unit"]]
        if count < 1 or every < 1:
            raise ValueError(f"a rate budget needs a positive count and period; got {text!r}")
        if seconds * US > MAX_PERIOD_US:
            raise ValueError(
                f"a rate budget's period is at most {MAX_PERIOD_US // US // 86400} days; "
                f"got {text!r}"
            )
        return cls(count, float(seconds))

    def __str__(self) -> str:
        return f"{self.limit}/{self.period:g}s"
