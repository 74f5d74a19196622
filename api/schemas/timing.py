"""Wire schemas of the timing surface: a person's decision interval and daily dose."""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator

from api.schemas.base import Strict
from api.schemas.me import ProfilePublic, ProfileUpdate
from notifier.schedule import (
    DEFAULT_EVERY_MINUTES,
    DEFAULT_PUSHES_PER_DAY,
    EVERY_MINUTES,
    MAX_PUSHES_PER_DAY,
)


class TimingPublic(BaseModel):
    every_minutes: int = Field(
        description="How often, in waking hours, oO decides whether to push a tip now"
    )
    pushes_per_day: int = Field(description="At most this many pushed tips a day (0: none)")


class TimingUpdate(Strict):
    every_minutes: int | None = Field(
        default=None,
        description=f"One of {', '.join(map(str, EVERY_MINUTES))} (default "
        f"{DEFAULT_EVERY_MINUTES})",
    )
    pushes_per_day: int | None = Field(
        default=None,
        ge=0,
        le=MAX_PUSHES_PER_DAY,
        description=f"0 to {MAX_PUSHES_PER_DAY} (default {DEFAULT_PUSHES_PER_DAY}); 0 turns "
        "pushed tips off while keeping the devices",
    )

    @field_validator("every_minutes")
    @classmethod
    def _divides_the_day(cls, value: int | None) -> int | None:
        if value is not None and value not in EVERY_MINUTES:
            raise ValueError(
                f"must be one of {', '.join(map(str, EVERY_MINUTES))} minutes (got {value})"
            )
        return value


class MePublic(ProfilePublic):
    """The profile, and when tips are pushed (waking hours are outside `quiet_hours`, or
    08:00-22:00 when none are set)."""

    timing: TimingPublic


class MeUpdate(ProfileUpdate):
    timing: TimingUpdate | None = None
