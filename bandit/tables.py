"""Database tables of the decision loop (SQLModel; SQLite in the embedded default, PostgreSQL
in production). Table rows never leave the service raw: the api maps them to wire schemas.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, overload

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

from bandit.clock import as_utc


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite forgets the zone)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware UTC datetime")
        return as_utc(value, "a stored time")

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return as_utc(value, "a stored time")  # SQLite gives naive UTC back

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        """On SQLite, `utc_from_sqlite`: the same datetimes as SQLAlchemy's parse followed by
        `process_result_value`, in a tenth of the time."""
        if dialect.name == "sqlite":
            return utc_from_sqlite
        return super().result_processor(dialect, coltype)


@overload
def utc_from_sqlite(text: str) -> datetime: ...
@overload
def utc_from_sqlite(text: None) -> None: ...
def utc_from_sqlite(text: str | None) -> datetime | None:
    """A `UTCDateTime` column's SQLite text as an aware UTC datetime (None stays None).

    The store writes naive UTC text, which SQLAlchemy reads with `fromisoformat` and then
    `process_result_value` marks UTC with `replace(tzinfo=UTC)`: 0.9 µs a value, most of it
    in `replace`'s keyword parsing, 30 times over in a recommend's recent choices. Parsing the
    text with a "+00:00" appended gives the same datetime in 0.1 µs. Text that carries its own
    offset, or is a date alone (which that parse leaves naive), takes the general way.
    """
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text + "+00:00")
    except ValueError:  # an offset of its own
        moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo is UTC else as_utc(moment, "a stored time")


def _json() -> Any:
    return sa.Column(sa.JSON, nullable=False)


AWAITING_INDEX = "ix_decisions_awaiting"
"""The unlearned decisions by activation time: what the learner's sweep reads (named there)."""


class DecisionRow(SQLModel, table=True):
    __tablename__ = "decisions"
    __table_args__ = (
        # A person's decisions on a surface (the decision path's recent choices and history),
        # and by person alone (export, erasure): migration 0004 says why not (principal,
        # created_at).
        sa.Index("ix_decisions_principal_surface_created", "principal", "surface", "created_at"),
        sa.Index("ix_decisions_surface_created", "surface", "created_at"),
        sa.Index("ix_decisions_learn_seq", "learn_seq"),
        # Experiment results group an experiment's decisions by arm and unit.
        sa.Index(
            "ix_decisions_experiment_arm_principal",
            "experiment",
            "arm",
            "principal",
            postgresql_where=sa.text("experiment IS NOT NULL"),
            sqlite_where=sa.text("experiment IS NOT NULL"),
        ),
        sa.Index(
            AWAITING_INDEX,
            "activated_at",
            postgresql_where=sa.text("learn_seq IS NULL"),
            sqlite_where=sa.text("learn_seq IS NULL"),
        ),
    )

    event_id: str = Field(primary_key=True, max_length=256)
    surface: str = Field(max_length=64)
    principal: str = Field(max_length=256)
    created_at: datetime = Field(sa_type=UTCDateTime)
    context: list[dict[str, Any]] = Field(sa_column=_json())
    actions: list[dict[str, Any]] = Field(sa_column=_json())
    pmf: list[float] = Field(sa_column=_json())
    chosen_index: int
    chosen_action: str = Field(max_length=256)
    propensity: float
    policy: str = Field(max_length=128)
    model_key: str = Field(max_length=256)
    model_version: int
    experiment: str | None = Field(default=None, max_length=128)
    arm: str | None = Field(default=None, max_length=128)
    missing_sources: list[str] = Field(sa_column=_json())
    excluded: list[str] = Field(sa_column=_json())
    vw_example: str = Field(sa_type=sa.Text)
    deferred: bool = False
    activated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    learn_seq: int | None = Field(default=None, sa_type=sa.BigInteger)
    learned_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    learned_reward: float | None = None


class RewardRow(SQLModel, table=True):
    __tablename__ = "rewards"
    __table_args__ = (sa.Index("ix_rewards_received", "received_at"),)

    event_id: str = Field(primary_key=True, max_length=256, foreign_key="decisions.event_id")
    value: float
    reaction: str | None = Field(default=None, max_length=32)
    received_at: datetime = Field(sa_type=UTCDateTime)
    late: bool = False


class ModelSnapshotRow(SQLModel, table=True):
    __tablename__ = "model_snapshots"
    __table_args__ = (sa.Index("ix_model_snapshots_key_version", "model_key", "version"),)

    id: int | None = Field(default=None, primary_key=True)
    model_key: str = Field(max_length=256)
    args: str
    version: int = Field(sa_type=sa.BigInteger)
    through_seq: int = Field(sa_type=sa.BigInteger)
    created_at: datetime = Field(sa_type=UTCDateTime)
    data: bytes = Field(sa_type=sa.LargeBinary)
