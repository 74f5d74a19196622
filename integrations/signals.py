"""Signals: the one normalized event contract and its store.

A signal is something that happened to a person that may change which tip suits them: a mood
or energy check-in, a habit done, or a custom type an integration defines. Whatever produces it
(the black page, `POST /v1/signals`, an integration) calls `SignalIngest.ingest`, which stores
it (the context builder reads the store) and publishes it on the `signals` stream; `SignalWorker`
consumes the stream in the learner and prunes the store past its retention period (both in
`integrations.signal_stream`).
Contract and rules: docs/signals.md.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

import sqlalchemy as sa
from prometheus_client import Counter, Gauge, Histogram
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import Connection, Engine

from bandit.clock import as_utc
from bandit.errors import DomainError
from bandit.events import utcnow
from integrations.tables import SignalRow

log = logging.getLogger(__name__)

signals_table = SignalRow.__table__  # type: ignore[attr-defined]
_INSERT = signals_table.insert()

BUILTIN_TYPES = ("mood", "energy", "habit_done")
"""Types oO itself understands; custom types are namespaced, `<namespace>.<name>`."""
SCALE_TYPES = ("mood", "energy")
MAX_CLOCK_SKEW = timedelta(minutes=5)
"""How far in the future `occurred_at` may be: the sender's clock may run a little ahead."""
CONTEXT_LIMIT = 200
"""The context builder reads at most this many of a person's newest signals."""

_CUSTOM_TYPE = re.compile(r"[a-z][a-z0-9_-]*(\.[a-z][a-z0-9_-]*)+")


def _no_nul(value: str) -> str:
    # PostgreSQL's text type cannot hold NUL: refuse it here rather than fail the insert.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character (\\u0000)")
    return value


SignalType = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
]
SignalSource = Annotated[
    str, StringConstraints(min_length=1, max_length=64), AfterValidator(_no_nul)
]


class Signal(BaseModel):
    """A normalized signal: the only shape a signal has, on the wire, on the bus and in export.

    Text fields are data, never markup or SQL: they are stored through bound parameters and
    returned inside JSON strings exactly as they came.
    """

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, frozen=True)

    type: SignalType = Field(
        description="mood, energy, habit_done, or a custom type `<namespace>.<name>` "
        "(lowercase letters, digits, `_` and `-`; e.g. `todoist.task_done`)"
    )
    value: float = Field(
        description="mood and energy: 1 (low) to 5 (high); habit_done: 1 (done) or 0 (skipped); "
        "custom types: any finite number"
    )
    occurred_at: datetime = Field(
        default_factory=utcnow,
        description="When it happened, with a timezone offset; defaults to when it is received",
    )
    source: SignalSource = Field(
        default="api", description="Who sent it: web, api, or the integration's name"
    )

    @field_validator("type")
    @classmethod
    def _named(cls, value: str) -> str:
        if value in BUILTIN_TYPES or _CUSTOM_TYPE.fullmatch(value):
            return value
        raise ValueError(
            f"`type` {value!r} is neither a built-in type ({', '.join(BUILTIN_TYPES)}) nor a "
            "custom type named `<namespace>.<name>`, e.g. 'fitness.steps'"
        )

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("`occurred_at` must carry a timezone offset, e.g. 2026-11-25T09:00Z")
        value = as_utc(value, "occurred_at")  # stored in UTC
        if value > utcnow() + MAX_CLOCK_SKEW:
            raise ValueError(
                f"`occurred_at` is in the future (got {value.isoformat()}); signals report what "
                "has happened"
            )
        return value

    @model_validator(mode="after")
    def _scale(self) -> Signal:
        if self.type in SCALE_TYPES and not 1.0 <= self.value <= 5.0:
            raise ValueError(
                f"`value` of a {self.type} signal must be in [1, 5] (got {self.value})"
            )
        if self.type == "habit_done" and self.value not in (0.0, 1.0):
            raise ValueError(
                f"`value` of a habit_done signal must be 1 (done) or 0 (skipped) (got {self.value})"
            )
        return self


def trusted(type: str, value: float, occurred_at: datetime, source: str) -> Signal:
    """A signal read back from our own store or stream, without validating it again."""
    return Signal.model_construct(type=type, value=value, occurred_at=occurred_at, source=source)


class SignalRejected(DomainError, ValueError):
    """A well-formed signal the service will not keep; `field` (also the target) names the
    culprit."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message, target=field)
        self.field = field


@dataclass(frozen=True, slots=True)
class StoredSignal:
    id: int
    signal: Signal
    received_at: datetime


# ------------------------------------------------------------------------------ metrics

INGESTED = Counter("oo_signals_ingested_total", "Signals stored", ["type"])
CONSUMED = Counter("oo_signals_consumed_total", "Signals read from the signals stream", ["type"])
DELAY = Histogram(
    "oo_signal_delay_seconds",
    "From a signal's occurred_at to its arrival (offline check-ins, integration polling)",
    buckets=(1, 10, 60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400),
)
STREAM_LAG = Histogram(
    "oo_signal_stream_lag_seconds",
    "From a signal's arrival to its consumption from the signals stream",
    buckets=(0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 120, 600),
)
LAST_RECEIVED = Gauge(
    "oo_signal_last_received_timestamp_seconds", "When a signal of this type last arrived", ["type"]
)
PUBLISH_ERRORS = Counter(
    "oo_signal_publish_errors_total", "Signals stored but not published (stream unavailable)"
)
DROPPED = Counter(
    "oo_signal_stream_dropped_total", "Stream entries dropped: full in-process queue or invalid"
)
PRUNED = Counter("oo_signals_pruned_total", "Signals deleted past the retention period")


def metric_type(signal_type: str) -> str:
    """Label value: built-in types by name, every custom type as `custom` (bounded cardinality)."""
    return signal_type if signal_type in BUILTIN_TYPES else "custom"


# -------------------------------------------------------------------------------- store


@dataclass(frozen=True, slots=True)
class PruneReport:
    cutoff: datetime
    deleted: int
    remaining: int
    oldest: datetime | None


_LATEST = (
    sa.select(
        signals_table.c.type,
        signals_table.c.value,
        signals_table.c.occurred_at,
        signals_table.c.source,
    )
    .where(
        signals_table.c.principal == sa.bindparam("principal"),
        signals_table.c.occurred_at >= sa.bindparam("since"),
    )
    .order_by(signals_table.c.occurred_at.desc(), signals_table.c.id.desc())
    .limit(CONTEXT_LIMIT)
)
"""A person's newest signals since a time, built once."""


def newest(rows: Iterable[Sequence[Any]]) -> dict[str, Signal]:
    """The first (newest) signal of each type among rows of (type, value, occurred_at, source),
    newest first (`_LATEST`, or the same SELECT sent directly)."""
    latest: dict[str, Signal] = {}
    for kind, value, occurred_at, source in rows:
        latest.setdefault(kind, trusted(kind, value, occurred_at, source))
    return latest


class SignalStore:
    """Signals on the service's database, indexed for the two ways they are read: a person's
    newest (context builder, export, erasure) and everyone's oldest (retention pruning)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def add(self, principal: str, signal: Signal, received_at: datetime) -> int:
        with self.engine.begin() as conn:
            # One statement built once, its values bound: `insert().values(...)` per call
            # built and cache-keyed a new statement each time.
            result = conn.execute(
                _INSERT,
                {
                    "principal": principal,
                    "type": signal.type,
                    "value": signal.value,
                    "occurred_at": signal.occurred_at,
                    "source": signal.source,
                    "received_at": received_at,
                },
            )
        key = result.inserted_primary_key
        return int(key[0]) if key else 0

    def latest_query(self, principal: str, since: datetime) -> sa.Select[Any]:
        """A person's newest signals since `since`; served by ix_signals_principal_occurred."""
        return _LATEST.params(principal=principal, since=since)

    def latest(self, principal: str, since: datetime) -> dict[str, Signal]:
        """The newest signal of each type that occurred at or after `since`."""
        with self.autocommit.connect() as conn:
            return self.latest_on(conn, principal, since)

    def latest_on(self, conn: Connection, principal: str, since: datetime) -> dict[str, Signal]:
        """`latest` on the caller's connection (reads that share one checkout)."""
        return newest(conn.execute(_LATEST, {"principal": principal, "since": since}))

    def of_person(self, principal: str) -> list[StoredSignal]:
        """Every signal held about `principal`, oldest first (for export)."""
        query = (
            sa.select(signals_table)
            .where(signals_table.c.principal == principal)
            .order_by(signals_table.c.occurred_at, signals_table.c.id)
        )
        with self.autocommit.connect() as conn:
            return [
                StoredSignal(
                    row.id,
                    trusted(row.type, row.value, row.occurred_at, row.source),
                    row.received_at,
                )
                for row in conn.execute(query)
            ]

    def forget(self, principal: str) -> int:
        with self.engine.begin() as conn:
            deleted = conn.execute(
                signals_table.delete().where(signals_table.c.principal == principal)
            )
        return int(deleted.rowcount or 0)

    def prune(
        self,
        before: datetime,
        *,
        batch: int = 5000,
        on_batch: Callable[[int], None] | None = None,
    ) -> int:
        """Delete signals that occurred before `before`, `batch` rows per transaction so a large
        backlog never holds a long lock; `on_batch` gets the running total."""
        if batch < 1:
            raise ValueError(f"`batch` must be at least 1 (got {batch})")
        oldest = (
            sa.select(signals_table.c.id)
            .where(signals_table.c.occurred_at < before)
            .limit(batch)
            .scalar_subquery()
        )
        total = 0
        while True:
            with self.engine.begin() as conn:
                deleted = int(
                    conn.execute(
                        signals_table.delete().where(signals_table.c.id.in_(oldest))
                    ).rowcount
                    or 0
                )
            total += deleted
            if deleted:
                PRUNED.inc(deleted)
                if on_batch is not None:
                    on_batch(total)
            if deleted < batch:
                return total

    def summary(self) -> tuple[int, datetime | None]:
        """(signals held, the oldest one's occurred_at)."""
        query = sa.select(sa.func.count(), sa.func.min(signals_table.c.occurred_at))
        with self.autocommit.connect() as conn:
            count, oldest = conn.execute(query).one()
        if isinstance(oldest, str):  # aggregates bypass the column type on SQLite
            oldest = datetime.fromisoformat(oldest)
        if isinstance(oldest, datetime):
            oldest = as_utc(oldest, "occurred_at")
        return int(count), oldest

    def prune_report(
        self,
        retention: timedelta,
        *,
        now: datetime | None = None,
        batch: int = 5000,
        on_batch: Callable[[int], None] | None = None,
    ) -> PruneReport:
        """Prune everything older than `retention` before `now`, and say what is left."""
        cutoff = (now or utcnow()) - retention
        deleted = self.prune(cutoff, batch=batch, on_batch=on_batch)
        remaining, oldest = self.summary()
        return PruneReport(cutoff, deleted, remaining, oldest)
