"""Tables for what oO holds about a person: the profile and normalized signals."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from bandit.tables import UTCDateTime


class ProfileRow(SQLModel, table=True):
    __tablename__ = "profiles"

    principal: str = Field(primary_key=True, max_length=256)
    timezone: str = Field(default="UTC", max_length=64)
    quiet_start: str | None = Field(default=None, max_length=5)
    quiet_end: str | None = Field(default=None, max_length=5)
    interests: list[str] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    kinds: list[str] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    updated_at: datetime = Field(sa_type=UTCDateTime)


class SignalRow(SQLModel, table=True):
    __tablename__ = "signals"
    __table_args__ = (
        # A person's newest signals: the context builder, export and erasure.
        sa.Index("ix_signals_principal_occurred", "principal", "occurred_at"),
        # Everyone's oldest: retention pruning.
        sa.Index("ix_signals_occurred", "occurred_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    principal: str = Field(max_length=256)
    type: str = Field(max_length=64)
    value: float
    occurred_at: datetime = Field(sa_type=UTCDateTime)
    source: str = Field(max_length=64)
    received_at: datetime = Field(sa_type=UTCDateTime)
