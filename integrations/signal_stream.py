"""The signals stream: `SignalIngest` stores a signal and publishes it, `SignalWorker` reads it.

Redis Streams in production (a consumer group per kind of consumer, trimmed past
`STREAM_RETENTION`), a bounded in-process queue in the embedded default. The worker runs in the
learner (or the all-in-one process) and prunes the store past its retention period.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import redis
from pydantic import ValidationError

from bandit.bus import drain
from bandit.consumer_group import ConsumerGroup
from bandit.events import utcnow
from integrations.signals import (
    CONSUMED,
    DELAY,
    DROPPED,
    INGESTED,
    LAST_RECEIVED,
    PUBLISH_ERRORS,
    STREAM_LAG,
    PruneReport,
    Signal,
    SignalRejected,
    SignalStore,
    StoredSignal,
    metric_type,
)

log = logging.getLogger(__name__)


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
        return drain(self._queue, count, block_ms)

    def ack(self, events: Sequence[SignalEvent]) -> None:
        """Nothing to do: an event is gone from the queue once read."""

    def trim(self, older_than: datetime) -> None:
        """Nothing to do: the queue holds only unread events."""

    def close(self) -> None:
        """Nothing to release."""


class RedisSignalBus:
    """The `oo:signals` Redis Stream, read through a consumer group (one per kind of consumer).

    How a consumer that crashed loses no entry is `bandit.consumer_group.ConsumerGroup`'s: its
    own pending entries first, then those another consumer of the group left pending for longer
    than `claim_idle_ms` (it died, or was renamed), then new ones. This class only encodes and
    decodes signals.
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str = SIGNAL_STREAM,
        group: str = SIGNAL_GROUP,
        maxlen: int = 100_000,
        claim_idle_ms: int = 60_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=2, health_check_interval=15
        )
        self.stream = stream
        self.group = group
        self.maxlen = maxlen
        self.claim_idle_ms = claim_idle_ms
        self._group = ConsumerGroup(
            self.client, stream, group, claim_idle_ms=claim_idle_ms, clock=clock
        )

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

    def read(self, consumer: str, count: int, block_ms: int) -> list[SignalEvent]:
        events: list[SignalEvent] = []
        invalid: list[str] = []
        for entry in self._group.read(consumer, count, block_ms):
            event = _decode(entry.id, entry.fields)
            if event is None:
                invalid.append(entry.id)
            else:
                events.append(event)
        if invalid:
            # Never a signal, or trimmed while pending: acknowledged, or it would come back.
            DROPPED.inc(len(invalid))
            self._group.ack(invalid)
        return events

    def ack(self, events: Sequence[SignalEvent]) -> None:
        self._group.ack([e.id for e in events])

    def trim(self, older_than: datetime) -> None:
        # Stream ids start with the entry's millisecond timestamp.
        self.client.xtrim(
            self.stream, minid=str(int(older_than.timestamp() * 1000)), approximate=True
        )

    def close(self) -> None:
        self.client.close()


def _decode(entry_id: str, fields: dict[bytes, bytes]) -> SignalEvent | None:
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
