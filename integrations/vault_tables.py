"""The token vault's table: one encrypted provider token per (principal, provider).

Only ciphertext is stored; the plaintext token never reaches the database. `key_id` repeats the
key id carried inside the ciphertext so rotation can find stale rows without decrypting them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from bandit.tables import UTCDateTime

TokenStatus = Literal["connected", "needs_reconnect"]
TOKEN_STATUSES: tuple[TokenStatus, ...] = ("connected", "needs_reconnect")


class IntegrationTokenRow(SQLModel, table=True):
    __tablename__ = "integration_tokens"
    __table_args__ = (sa.Index("ix_integration_tokens_key_id", "key_id"),)

    principal: str = Field(primary_key=True, max_length=256)
    provider: str = Field(primary_key=True, max_length=32)
    ciphertext: bytes = Field(sa_type=sa.LargeBinary)
    key_id: str = Field(max_length=32)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(default="connected", max_length=16)
    updated_at: datetime = Field(sa_type=UTCDateTime)
