"""Rate budgets as settings spell them: `30/minute`, `5/10s`, `off` (used by api.ratelimit)."""

from __future__ import annotations

import re
from dataclasses import dataclass

UNITS = {"s": 1, "second": 1, "m": 60, "minute": 60, "h": 3600, "hour": 3600, "day": 86400}
BUDGET = re.compile(r"^\s*(?P<count>\d+)\s*/\s*(?P<every>\d*)\s*(?P<unit>[a-z]+)\s*$")


@dataclass(frozen=True, slots=True)
class Budget:
    """`limit` requests per `period` seconds; a full bucket allows `limit` at once."""

    limit: int
    period: float

    @property
    def interval(self) -> float:
        return self.period / self.limit

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
        if count < 1 or every < 1:
            raise ValueError(f"a rate budget needs a positive count and period; got {text!r}")
        return cls(count, float(every * UNITS[match["unit"]]))

    def __str__(self) -> str:
        return f"{self.limit}/{self.period:g}s"
