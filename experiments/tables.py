"""Tables of experiments and of each surface's default policy (SQLModel, next to the others)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from bandit.tables import UTCDateTime


class ExperimentRow(SQLModel, table=True):
    __tablename__ = "experiments"
    __table_args__ = (
        # At most one running experiment per surface, even under concurrent starts.
        sa.Index(
            "ux_experiments_running_surface",
            "surface",
            unique=True,
            postgresql_where=sa.text("status = 'running'"),
            sqlite_where=sa.text("status = 'running'"),
        ),
    )

    name: str = Field(primary_key=True, max_length=64)
    surface: str = Field(max_length=64)
    status: str = Field(max_length=16)
    arms: list[dict[str, Any]] = Field(sa_column=sa.Column(sa.JSON, nullable=False))
    salt: str = Field(max_length=64)
    description: str = Field(default="", sa_type=sa.Text)
    min_units_per_arm: int
    min_decisions_per_arm: int
    created_at: datetime = Field(sa_type=UTCDateTime)
    started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    stopped_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    shipped_arm: str | None = Field(default=None, max_length=64)


class DefaultPolicyRow(SQLModel, table=True):
    """The policy a surface serves outside experiments; set by shipping an experiment's arm."""

    __tablename__ = "default_policies"

    surface: str = Field(primary_key=True, max_length=64)
    policy: str = Field(max_length=64)
    experiment: str | None = Field(default=None, max_length=64)
    updated_at: datetime = Field(sa_type=UTCDateTime)
