"""Wire schemas of people's integrations (issue 4)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

IntegrationProvider = Literal["todoist", "google-calendar"]


class IntegrationPublic(BaseModel):
    provider: IntegrationProvider
    status: Literal["connected", "needs_reconnect", "not_connected"] = Field(
        description="`needs_reconnect`: the provider refused the token (revoked or expired); "
        "connect again"
    )
    configured: bool = Field(description="False when this server has no OAuth client for it")
    connected_at: datetime | None = Field(description="When it was connected; null otherwise")
    changed_at: datetime | None = Field(description="When the status last changed")
    connect_url: str = Field(description="Open in the browser to connect (or reconnect)")


class IntegrationList(BaseModel):
    integrations: list[IntegrationPublic]
