"""The event bus that tells the learner which decisions may now be learned.

Messages carry only `(kind, event_id)`: the decision log in the database is the system of
record, so a lost message delays learning (the learner's sweep finds the event) but never loses
data. Production uses a Redis Stream with a consumer group; the embedded default an in-process
queue with the same interface.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import redis

log = logging.getLogger(__name__)

MessageKind = Literal["reward", "activate"]
STREAM = "oo:events"
GROUP = "learner"


T = TypeVar("T")


def drain(source: queue.Queue[T], count: int, block_ms: int) -> list[T]:
    """Up to `count` items of an in-process queue: the first waited for (at most `block_ms`),
    the rest only if already there. The in-process buses read like a Redis stream's XREADGROUP."""
    try:
        items = [source.get(timeout=block_ms / 1000)]
    except queue.Empty:
        return []
    while len(items) < count:
        try:
            items.append(source.get_nowait())
        except queue.Empty:
            break
    return items


@dataclass(frozen=True, slots=True)
class BusMessage:
    id: str
    kind: MessageKind
    event_id: str


class EventBus(Protocol):
    def publish(self, kind: MessageKind, event_id: str) -> None: ...

    def read(self, consumer: str, count: int, block_ms: int) -> list[BusMessage]: ...

    def ack(self, messages: Sequence[BusMessage]) -> None: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


class InProcessBus:
    """A queue shared by the api threads and the in-process learner thread."""

    def __init__(self) -> None:
        self._queue: queue.Queue[BusMessage] = queue.Queue()
        self._ids = 0
        self._lock = threading.Lock()

    def publish(self, kind: MessageKind, event_id: str) -> None:
        with self._lock:
            self._ids += 1
            message_id = str(self._ids)
        self._queue.put(BusMessage(message_id, kind, event_id))

    def read(self, consumer: str, count: int, block_ms: int) -> list[BusMessage]:
        return drain(self._queue, count, block_ms)

    def ack(self, messages: Sequence[BusMessage]) -> None:
        """Nothing to do: a message is gone from the queue once read."""

    def ping(self) -> None:
        """Always reachable."""

    def close(self) -> None:
        """Nothing to release."""


class RedisStreamBus:
    """A Redis Stream read through a consumer group.

    A consumer first re-reads its own pending (delivered, unacknowledged) messages, so a learner
    restarted under the same name resumes where it crashed; messages left pending by another
    consumer for longer than `claim_idle_ms` are claimed, at the first read and then at most
    once per `claim_idle_ms` (on `clock`, in seconds).
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str = STREAM,
        group: str = GROUP,
        maxlen: int = 1_000_000,
        claim_idle_ms: int = 60_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = redis.Redis.from_url(
            url, socket_timeout=2, socket_connect_timeout=2, health_check_interval=15
        )
        self.stream = stream
        self.group = group
        self.maxlen = maxlen
        self.claim_idle_ms = claim_idle_ms
        self._pending_done: set[str] = set()
        self._clock = clock
        # Not 0: a monotonic clock reads little more than the uptime, and a learner started
        # within `claim_idle_ms` of boot would leave a dead consumer's messages unclaimed.
        self._last_claim = -math.inf

    def _ensure_group(self) -> None:
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def publish(self, kind: MessageKind, event_id: str) -> None:
        self.client.xadd(
            self.stream, {"kind": kind, "event_id": event_id}, maxlen=self.maxlen, approximate=True
        )

    def read(self, consumer: str, count: int, block_ms: int) -> list[BusMessage]:
        try:
            return self._read(consumer, count, block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            # The stream or group vanished (Redis restarted without persistence): recreate.
            self._ensure_group()
            self._pending_done.discard(consumer)
            return []

    def _read(self, consumer: str, count: int, block_ms: int) -> list[BusMessage]:
        if consumer not in self._pending_done:
            self._ensure_group()
            pending = self.client.xreadgroup(self.group, consumer, {self.stream: "0"}, count=count)
            messages = _messages(pending)
            if messages:
                return messages
            self._pending_done.add(consumer)
        now = self._clock()
        if now - self._last_claim > self.claim_idle_ms / 1000:
            self._last_claim = now
            claimed = self.client.xautoclaim(
                self.stream, self.group, consumer, self.claim_idle_ms, "0-0", count=count
            )
            messages = _entries(claimed[1] if isinstance(claimed, list | tuple) else [])
            if messages:
                return messages
        fresh = self.client.xreadgroup(
            self.group, consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        return _messages(fresh)

    def ack(self, messages: Sequence[BusMessage]) -> None:
        if messages:
            self.client.xack(self.stream, self.group, *[m.id for m in messages])  # type: ignore[no-untyped-call]

    def ping(self) -> None:
        self.client.ping()

    def close(self) -> None:
        self.client.close()


def _messages(response: object) -> list[BusMessage]:
    if not response:
        return []
    entries: list[object] = []
    for _stream, stream_entries in response:  # type: ignore[attr-defined]
        entries.extend(stream_entries)
    return _entries(entries)


def _entries(entries: Sequence[object]) -> list[BusMessage]:
    messages = []
    for entry in entries:
        message_id: bytes | str
        fields: dict[bytes, bytes]
        message_id, fields = entry  # type: ignore[misc]
        if not fields:
            continue  # deleted by trimming while pending
        kind = fields[b"kind"].decode()
        messages.append(
            BusMessage(
                message_id.decode() if isinstance(message_id, bytes) else str(message_id),
                "activate" if kind == "activate" else "reward",
                fields[b"event_id"].decode(),
            )
        )
    return messages


def make_bus(redis_url: str | None) -> EventBus:
    return RedisStreamBus(redis_url) if redis_url else InProcessBus()
