"""Signals: the one normalized event contract, its store, its stream and its consumer.

A signal is something that happened to a person that may change which tip suits them: a mood
or energy check-in, a habit done, or a custom type an integration defines. Whatever produces it
(the black page, `POST /v1/signals`, an integration) calls `SignalIngest.ingest`, which stores it
(the context builder reads the store) and publishes it on the `signals` stream (Redis Streams in
production, an in-process queue in the embedded default). `SignalWorker` consumes the stream in
the learner (or the all-in-one process) and prunes the store past its retention period.
Contract and rules: docs/signals.md.
"""

from __future__ import annotations

import logging
import queue
import re
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Protocol

import redis
import sqlalchemy as sa
from prometheus_client import Counter, Gauge, Histogram
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from sqlalchemy.engine import Engine

from bandit.clock import as_utc
from bandit.errors import DomainError
from bandit.events import utcnow
from integrations.tables import SignalRow

log = logging.getLogger(__name__)

signals_table = SignalRow.__table__  # type: ignore[attr-defined]

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


class SignalStore:
    """Signals on the service's database, indexed for the two ways they are read: a person's
    newest (context builder, export, erasure) and everyone's oldest (retention pruning)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def add(self, principal: str, signal: Signal, received_at: datetime) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(
                signals_table.insert().values(
                    principal=principal,
                    type=signal.type,
                    value=signal.value,
                    occurred_at=signal.occurred_at,
                    source=signal.source,
                    received_at=received_at,
                )
            )
        key = result.inserted_primary_key
        return int(key[0]) if key else 0

    def latest_query(self, principal: str, since: datetime) -> sa.Select[Any]:
        """A person's newest signals since `since`; served by ix_signals_principal_occurred."""
        return (
            sa.select(
                signals_table.c.type,
                signals_table.c.value,
                signals_table.c.occurred_at,
                signals_table.c.source,
            )
            .where(signals_table.c.principal == principal, signals_table.c.occurred_at >= since)
            .order_by(signals_table.c.occurred_at.desc())
            .limit(CONTEXT_LIMIT)
        )

    def latest(self, principal: str, since: datetime) -> dict[str, Signal]:
        """The newest signal of each type that occurred at or after `since`."""
        latest: dict[str, Signal] = {}
        with self.autocommit.connect() as conn:
            for row in conn.execute(self.latest_query(principal, since)):
                latest.setdefault(
                    row.type, trusted(row.type, row.value, row.occurred_at, row.source)
                )
        return latest

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
        if isinstance(oldest, datetime) and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)  # aggregates bypass the column type on SQLite
        elif isinstance(oldest, str):
            oldest = datetime.fromisoformat(oldest).replace(tzinfo=UTC)
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


# ------------------------------------------------------------------------------- stream

SIGNAL_STREAM = "oo:signals"
SIGNAL_GROUP = "signal-observer"
STREAM_RETENTION = timedelta(days=1)
"""Entries older than this are trimmed from the Redis stream: it carries personal data, and
the database, not the stream, is the signals' system of record."""


@dataclass(frozen=True, slots=True)
class SignalEvent:
    """One entry of the signals stream."""

    id: str
    principal: str
    signal: Signal
    received_at: datetime


class SignalBus(Protocol):
    def publish(self, principal: str, signal: Signal, received_at: datetime) -> None: ...

    def read(self, consumer: str, count: int, block_ms: int) -> list[SignalEvent]: ...

    def ack(self, events: Sequence[SignalEvent]) -> None: ...

    def trim(self, older_than: datetime) -> None: ...

    def close(self) -> None: ...


class InProcessSignalBus:
    """A bounded queue between the api threads and the in-process `SignalWorker`."""

    def __init__(self, maxsize: int = 10_000) -> None:
        self._queue: queue.Queue[SignalEvent] = queue.Queue(maxsize=maxsize)
        self._ids = 0
        self._lock = threading.Lock()

    def publish(self, principal: str, signal: Signal, received_at: datetime) -> None:
        with self._lock:
            self._ids += 1
            event = SignalEvent(str(self._ids), principal, signal, received_at)
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            DROPPED.inc()  # the consumer is stuck; the signal itself is stored

    def read(self, consumer: str, count: int, block_ms: int) -> list[SignalEvent]:
        try:
            events = [self._queue.get(timeout=block_ms / 1000)]
        except queue.Empty:
            return []
        while len(events) < count:
            try:
                events.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return events

    def ack(self, events: Sequence[SignalEvent]) -> None:
        """Nothing to do: an event is gone from the queue once read."""

    def trim(self, older_than: datetime) -> None:
        """Nothing to do: the queue holds only unread events."""

    def close(self) -> None:
        """Nothing to release."""


class RedisSignalBus:
    """The `oo:signals` Redis Stream, read through a consumer group (one per kind of consumer)."""

    def __init__(
        self,
        url: str,
        *,
        stream: str = SIGNAL_STREAM,
        group: str = SIGNAL_GROUP,
        maxlen: int = 100_000,
    ) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=15
        )
        self.stream = stream
        self.group = group
        self.maxlen = maxlen
        self._pending_done: set[str] = set()

    def publish(self, principal: str, signal: Signal, received_at: datetime) -> None:
        fields = {
            "principal": principal,
            "type": signal.type,
            "value": repr(signal.value),
            "occurred_at": signal.occurred_at.isoformat(),
            "source": signal.source,
            "received_at": received_at.isoformat(),
        }
        self.client.xadd(self.stream, fields, maxlen=self.maxlen, approximate=True)

    def _ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, consumer: str, count: int, block_ms: int) -> list[SignalEvent]:
        try:
            if consumer not in self._pending_done:
                # First our own delivered-but-unacknowledged entries (we crashed before acking).
                self._ensure_group()
                pending = self.client.xreadgroup(
                    self.group, consumer, {self.stream: "0"}, count=count
                )
                events = self._events(pending)
                if events:
                    return events
                self._pending_done.add(consumer)
            fresh = self.client.xreadgroup(
                self.group, consumer, {self.stream: ">"}, count=count, block=block_ms
            )
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self._pending_done.discard(consumer)  # Redis restarted empty: recreate next time
            return []
        return self._events(fresh)

    def _events(self, response: object) -> list[SignalEvent]:
        events: list[SignalEvent] = []
        invalid: list[str] = []
        for _stream, entries in response or []:  # type: ignore[attr-defined]
            for raw_id, fields in entries:
                entry_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                event = _decode(entry_id, fields)
                if event is None:
                    invalid.append(entry_id)
                else:
                    events.append(event)
        if invalid:
            DROPPED.inc(len(invalid))
            self.client.xack(self.stream, self.group, *invalid)  # type: ignore[no-untyped-call]
        return events

    def ack(self, events: Sequence[SignalEvent]) -> None:
        if events:
            self.client.xack(self.stream, self.group, *[e.id for e in events])  # type: ignore[no-untyped-call]

    def trim(self, older_than: datetime) -> None:
        # Stream ids start with the entry's millisecond timestamp.
        self.client.xtrim(
            self.stream, minid=str(int(older_than.timestamp() * 1000)), approximate=True
        )

    def close(self) -> None:
        self.client.close()


def _decode(entry_id: str, fields: dict[bytes, bytes] | None) -> SignalEvent | None:
    """A stream entry as an event; None (logged without its content) when it is not one."""
    if not fields:
        return None  # trimmed while pending
    try:
        text = {k.decode(): v.decode() for k, v in fields.items()}
        signal = Signal.model_validate(
            {
                "type": text["type"],
                "value": float(text["value"]),
                "occurred_at": text["occurred_at"],
                "source": text["source"],
            }
        )
        return SignalEvent(
            entry_id, text["principal"], signal, datetime.fromisoformat(text["received_at"])
        )
    except (KeyError, ValueError, UnicodeDecodeError, ValidationError):
        log.warning("signals stream: entry %s is not a signal; dropped", entry_id)
        return None


def make_signal_bus(redis_url: str | None) -> SignalBus:
    return RedisSignalBus(redis_url) if redis_url else InProcessSignalBus()


# ------------------------------------------------------------------------------- ingest


class SignalIngest:
    """The one way in for a normalized signal, from the api or from an integration."""

    def __init__(self, store: SignalStore, bus: SignalBus, *, retention: timedelta) -> None:
        self.store = store
        self.bus = bus
        self.retention = retention

    def ingest(self, principal: str, signal: Signal) -> StoredSignal:
        """Store `signal` for `principal` (durable before this returns), then publish it.

        Raises `SignalRejected` for a signal already past the retention period: it would be
        pruned at once. A stream that is down only costs its consumers an event (counted in
        `oo_signal_publish_errors_total`): the store, which the context builder reads, has it.
        """
        received_at = utcnow()
        if signal.occurred_at < received_at - self.retention:
            raise SignalRejected(
                f"`occurred_at` is older than the signal retention period of "
                f"{self.retention.days} days (got {signal.occurred_at.isoformat()})",
                field="occurred_at",
            )
        signal_id = self.store.add(principal, signal, received_at)
        INGESTED.labels(metric_type(signal.type)).inc()
        try:
            self.bus.publish(principal, signal, received_at)
        except Exception:
            PUBLISH_ERRORS.inc()
            log.warning("signals stream unavailable; signal %d stored but not published", signal_id)
        return StoredSignal(signal_id, signal, received_at)


# ------------------------------------------------------------------------------- worker


class SignalWorker:
    """Consumes the signals stream and keeps the store within its retention period.

    What it does with each event is observability: how late signals arrive after they happened
    (a stalled integration or a long offline queue shows here), how long they wait in the
    stream, and when each built-in type last arrived (an alert when check-ins stop). New
    consumers (re-deciding on a mood change, notifications) attach with their own group.
    """

    def __init__(
        self,
        store: SignalStore,
        bus: SignalBus,
        *,
        retention: timedelta,
        prune_seconds: float,
        consumer: str = "signals-1",
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.store = store
        self.bus = bus
        self.retention = retention
        self.prune_seconds = prune_seconds
        self.consumer = consumer
        self.clock = clock
        self.consumed = 0
        self.last_prune: PruneReport | None = None
        self._next_prune = 0.0

    def step(self, *, block_ms: int = 500) -> int:
        """Prune when due, then consume one batch; returns how many events were consumed."""
        if time.monotonic() >= self._next_prune:
            self._next_prune = time.monotonic() + self.prune_seconds
            self.prune()
        events = self.bus.read(self.consumer, 500, block_ms)
        now = self.clock()
        for event in events:
            kind = metric_type(event.signal.type)
            CONSUMED.labels(kind).inc()
            DELAY.observe(max(0.0, (event.received_at - event.signal.occurred_at).total_seconds()))
            STREAM_LAG.observe(max(0.0, (now - event.received_at).total_seconds()))
            LAST_RECEIVED.labels(kind).set(event.received_at.timestamp())
        self.bus.ack(events)
        self.consumed += len(events)
        return len(events)

    def prune(self) -> PruneReport:
        report = self.store.prune_report(self.retention, now=self.clock())
        self.bus.trim(self.clock() - STREAM_RETENTION)
        self.last_prune = report
        if report.deleted:
            log.info("signals: pruned %d signals older than %s", report.deleted, report.cutoff)
        return report

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                self.step()
            except Exception:
                log.warning("signal worker: step failed; retrying", exc_info=True)
                stop.wait(1.0)
