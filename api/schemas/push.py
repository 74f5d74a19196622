"""Wire schemas of Web Push: the VAPID key, people's devices, test pushes and opens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.schemas.base import EventId, NoNul, Strict

Base64Url = Annotated[str, StringConstraints(min_length=1, max_length=200), NoNul]


class PushKey(BaseModel):
    public_key: str = Field(
        description="The deployment's VAPID public key: base64url of a 65-byte uncompressed "
        "P-256 point, for `pushManager.subscribe({applicationServerKey})`"
    )


class PushSubscriptionKeys(BaseModel):
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    p256dh: Base64Url = Field(description="The browser's P-256 public key (65 bytes, base64url)")
    auth: Base64Url = Field(description="The browser's authentication secret (16 bytes)")


class PushSubscriptionIn(BaseModel):
    """The browser's `PushSubscription`, as `JSON.stringify` gives it (other fields ignored)."""

    model_config = ConfigDict(extra="ignore", allow_inf_nan=False)

    endpoint: Annotated[str, StringConstraints(min_length=1, max_length=2048), NoNul] = Field(
        description="The push service's URL for this browser: https on a known push service"
    )
    expirationTime: float | None = Field(  # noqa: N815 - the browser's own spelling
        default=None, description="When the subscription ends, milliseconds since 1970"
    )
    keys: PushSubscriptionKeys


class PushDevicePublic(BaseModel):
    id: str
    service: str = Field(description="The push service's host (fcm.googleapis.com, ...)")
    device: str | None = Field(description="Browser and system, e.g. `Firefox on Android`")
    created_at: datetime
    last_success_at: datetime | None = Field(description="The last push it accepted")
    expires_at: datetime | None


class PushDeviceList(BaseModel):
    devices: list[PushDevicePublic]


class PushTestAccepted(BaseModel):
    event_id: str = Field(description="The test push's id (opens of it are recorded under it)")
    devices: int = Field(description="Devices it is on its way to")


class PushOpened(Strict):
    event_id: EventId
