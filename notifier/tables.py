"""The notifier's tables: people's devices, and the push outbox (messages and their deliveries).

Capability secrets never reach a column in clear: a subscription's endpoint and keys, and a
message's payload (a tip's title may be a Todoist task's), are sealed by the token vault and
bound to their row. `endpoint_hash` (SHA-256 of the endpoint, a URL with a long random token in
it) finds the row a browser subscribes again with, without opening every row.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from bandit.tables import UTCDateTime

PENDING, SENDING, SENT, GONE, FAILED, EXPIRED = (
    "pending",
    "sending",
    "sent",
    "gone",
    "failed",
    "expired",
)
DELIVERY_STATES = (PENDING, SENDING, SENT, GONE, FAILED, EXPIRED)
"""pending: due at `next_attempt_at`; sending: held by a sender until `lease_until`; sent: the
push service answered 201; gone: the subscription ended (404/410, or deleted); failed: refused,
or out of attempts; expired: its TTL ran out before a push service took it."""
OPEN_STATES = (PENDING, SENDING)


class PushSubscriptionRow(SQLModel, table=True):
    __tablename__ = "push_subscriptions"
    __table_args__ = (
        sa.Index("ix_push_subscriptions_principal", "principal"),
        sa.Index("ix_push_subscriptions_endpoint_hash", "endpoint_hash", unique=True),
        sa.Index("ix_push_subscriptions_key_id", "key_id"),
    )

    id: str = Field(primary_key=True, max_length=32)
    principal: str = Field(max_length=256)
    endpoint_hash: str = Field(max_length=64)
    service: str = Field(max_length=255)
    """The push service's host: what a person sees of the endpoint."""
    ciphertext: bytes = Field(sa_type=sa.LargeBinary)
    key_id: str = Field(max_length=32)
    user_agent: str | None = Field(default=None, max_length=120)
    created_at: datetime = Field(sa_type=UTCDateTime)
    last_success_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PushMessageRow(SQLModel, table=True):
    __tablename__ = "push_messages"
    __table_args__ = (sa.Index("ix_push_messages_principal_created", "principal", "created_at"),)

    event_id: str = Field(primary_key=True, max_length=256)
    """The decision whose tip this push carries (a test push gets an id of its own)."""
    principal: str = Field(max_length=256)
    kind: str = Field(max_length=16)
    timing_event_id: str | None = Field(default=None, max_length=256)
    """The timing decision that chose to send now (None for a test push)."""
    ciphertext: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    """The sealed payload; cleared once no delivery of it is still open."""
    key_id: str | None = Field(default=None, max_length=32)
    topic: str = Field(max_length=32)
    urgency: str = Field(max_length=16)
    ttl_seconds: int
    created_at: datetime = Field(sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    opened_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class PushDeliveryRow(SQLModel, table=True):
    __tablename__ = "push_deliveries"
    __table_args__ = (
        sa.Index("ix_push_deliveries_due", "state", "next_attempt_at"),
        sa.Index("ix_push_deliveries_subscription", "subscription_id"),
        sa.Index("ix_push_deliveries_principal", "principal"),
    )

    event_id: str = Field(primary_key=True, max_length=256)
    subscription_id: str = Field(primary_key=True, max_length=32)
    principal: str = Field(max_length=256)
    state: str = Field(max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_type=UTCDateTime)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_status: int | None = None
    last_error: str | None = Field(default=None, max_length=200)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    trimmed: bool = False


class TimingPersonRow(SQLModel, table=True):
    """A person's timing settings (`PATCH /v1/me`); no row: the defaults."""

    __tablename__ = "timing_people"

    principal: str = Field(primary_key=True, max_length=256)
    every_minutes: int
    pushes_per_day: int
    updated_at: datetime = Field(sa_type=UTCDateTime)


class TimingPointRow(SQLModel, table=True):
    """One decision point of one person: claimed once across notifiers by its primary key (a
    lease: `notifier.timing_points`)."""

    __tablename__ = "timing_points"
    __table_args__ = (sa.Index("ix_timing_points_principal_decided", "principal", "decided_at"),)

    principal: str = Field(primary_key=True, max_length=256)
    slot_at: datetime = Field(primary_key=True, sa_type=UTCDateTime)
    """The start of the slot (UTC); the person's local day is `local_day`."""
    local_day: str = Field(max_length=10)
    event_id: str = Field(max_length=256)
    """The timing decision's event id (logged whether it chose send or wait)."""
    action: str | None = Field(default=None, max_length=8)
    """send or wait; None while it is being decided, or when its notifier died or failed
    (taken over once `decided_at` is a lease old, while the slot is current)."""
    tip_event_id: str | None = Field(default=None, max_length=256)
    """The tips decision pushed when `action` is send."""
    decided_at: datetime = Field(sa_type=UTCDateTime)
    """When the point was claimed, or last taken over: its claim's lease runs from it, and once
    decided it is the decision's time (the last push, a wait's window)."""
    visited_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    """When the person came on their own within a wait's window (its reward)."""
