"""The `policies` table: policy spec versions registered at run time (built-ins are not stored).

One row per (name, version). Migrations (`api/db`) make and change the table. A database made
before versions (and before migrations) lacks `version INTEGER NOT NULL DEFAULT 1` in the table
and its key; `oo db upgrade` lists that as drift when it adopts such a database.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from bandit.tables import UTCDateTime


class PolicyRow(SQLModel, table=True):
    __tablename__ = "policies"

    name: str = Field(primary_key=True, max_length=64)
    version: int = Field(default=1, primary_key=True)
    kind: str = Field(max_length=16)
    args: str = Field(sa_type=sa.Text)
    description: str = Field(default="", sa_type=sa.Text)
    created_at: datetime = Field(sa_type=UTCDateTime)
