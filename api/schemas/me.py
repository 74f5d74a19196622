"""Wire schemas of a person's own data: the profile and the export."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, Field, StringConstraints, field_validator

from api.schemas.base import NoNul, Strict

_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class QuietHours(Strict):
    start: str = Field(description="Local time HH:MM")
    end: str = Field(description="Local time HH:MM")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"must be a local time HH:MM (got {value!r})")
        return value


class ProfilePublic(BaseModel):
    timezone: str
    quiet_hours: QuietHours | None
    interests: list[str]
    kinds: list[Literal["advice", "todo"]]


Interest = Annotated[str, StringConstraints(min_length=1, max_length=40), NoNul]


class ProfileUpdate(Strict):
    timezone: str | None = None
    quiet_hours: QuietHours | None = None
    interests: list[Interest] | None = Field(default=None, max_length=20)
    kinds: list[Literal["advice", "todo"]] | None = Field(default=None, min_length=1)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"`timezone` must be an IANA zone like Europe/Paris (got {value!r})"
                ) from None
        return value


class ExportSectionPublic(BaseModel):
    name: str = Field(description="The module that holds this data: profile, signals, ...")
    description: str
    data: Any = Field(description="The section's data as JSON; text is returned verbatim")


class PersonExport(BaseModel):
    principal: str
    exported_at: datetime
    sections: list[ExportSectionPublic]
