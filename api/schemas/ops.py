"""Wire schemas of operations: health."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class HealthCheck(BaseModel):
    status: Literal["ok", "failing"]
    detail: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded", "failing"]
    role: str
    checks: dict[str, HealthCheck]
    models: dict[str, int]
