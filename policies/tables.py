"""The `policies` table: policy specs registered at run time (built-ins are not stored)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from bandit.tables import UTCDateTime


class PolicyRow(SQLModel, table=True):
    __tablename__ = "policies"

    name: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=16)
    args: str = Field(sa_type=sa.Text)
    description: str = Field(default="", sa_type=sa.Text)
    created_at: datetime = Field(sa_type=UTCDateTime)
