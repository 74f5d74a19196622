"""When a person's decision points fall: slots of their local day, waking hours, the dose.

A person's day is cut into slots of `every_minutes` from local midnight (30 by default); each
slot in their waking hours is one decision point while fewer than `pushes_per_day` tips were
pushed that local day. Waking hours are the time outside their quiet hours, or outside
`DEFAULT_NIGHT` when they set none (the page answers at any hour; a push never wakes anyone).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from integrations.profiles import Profile

DEFAULT_EVERY_MINUTES = 30
DEFAULT_PUSHES_PER_DAY = 3
MAX_PUSHES_PER_DAY = 12
EVERY_MINUTES = (15, 20, 30, 40, 45, 60, 90, 120, 180, 240)
"""Intervals that cut a day into whole slots."""
DEFAULT_NIGHT = ("22:00", "08:00")


@dataclass(frozen=True, slots=True)
class TimingSettings:
    """A person's decision interval and daily dose; `pushes_per_day` 0 turns timed tips off."""

    every_minutes: int = DEFAULT_EVERY_MINUTES
    pushes_per_day: int = DEFAULT_PUSHES_PER_DAY

    def __post_init__(self) -> None:
        if self.every_minutes not in EVERY_MINUTES:
            raise ValueError(
                f"`every_minutes` must be one of {', '.join(map(str, EVERY_MINUTES))} "
                f"(got {self.every_minutes})"
            )
        if not 0 <= self.pushes_per_day <= MAX_PUSHES_PER_DAY:
            raise ValueError(
                f"`pushes_per_day` must be 0 to {MAX_PUSHES_PER_DAY} (got {self.pushes_per_day})"
            )


@dataclass(frozen=True, slots=True)
class Slot:
    """One decision point: when its slot starts (UTC) and the person's local day."""

    at: datetime
    local_day: str


def awake(profile: Profile, now: datetime) -> bool:
    """Outside the person's quiet hours (or the default night when they set none)."""
    if not profile.quiet_start or not profile.quiet_end:
        profile = replace(profile, quiet_start=DEFAULT_NIGHT[0], quiet_end=DEFAULT_NIGHT[1])
    return profile.next_tip_at(now) is None


def slot(profile: Profile, now: datetime, every_minutes: int) -> Slot:
    """The slot `now` falls in, cut from the person's local midnight."""
    local = profile.local(now)
    minutes = local.hour * 60 + local.minute
    start = local.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(
        minutes=minutes - minutes % every_minutes
    )
    # Wall-clock arithmetic: on a daylight-saving change the slot's UTC instant is still unique.
    return Slot(start.astimezone(UTC), local.date().isoformat())


def later_today(profile: Profile, point: Slot, every_minutes: int) -> list[datetime]:
    """The starts (UTC) of the person's decision points after `point` on its local day: the
    awake slots left, in time order (what pacing weighs a push now against)."""
    step = timedelta(minutes=every_minutes)
    later = []
    at = point.at + step
    while profile.local(at).date().isoformat() == point.local_day:
        if awake(profile, at):
            later.append(at)
        at += step
    return later
