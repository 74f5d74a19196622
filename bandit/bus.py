"""The event bus that tells the learner which decisions may now be learned.

Messages carry only `(kind, event_id)`: the decision log in the database is the system of
record, so a lost message delays learning (the learner's sweep finds the event) but never loses
data. Production uses a Redis Stream with a consumer group; the embedded default an in-process
queue with the same interface.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol, TypeVar

import redis

from bandit.consumer_group import ConsumerGroup, StreamEntry

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


Message = tuple[MessageKind, str]
"""(kind, event_id), as published."""


class EventBus(Protocol):
    blocking: bool
    """Whether publishing waits on the network (so a coroutine hands it to a thread)."""

    def publish(self, kind: MessageKind, event_id: str) -> None: ...

    def publish_many(self, messages: Sequence[Message]) -> None: ...

    def read(self, consumer: str, count: int, block_ms: int) -> list[BusMessage]: ...

    def ack(self, messages: Sequence[BusMessage]) -> None: ...

    def ping(self) -> None: ...

    def close(self) -> None: ...


class InProcessBus:
    """A queue shared by the api threads and the in-process learner thread."""

    blocking = False

    def __init__(self) -> None:
        self._queue: queue.Queue[BusMessage] = queue.Queue()
        self._ids = 0
        self._lock = threading.Lock()

    def publish(self, kind: MessageKind, event_id: str) -> None:
        with self._lock:
            self._ids += 1
            message_id = str(self._ids)
        self._queue.put(BusMessage(message_id, kind, event_id))

    def publish_many(self, messages: Sequence[Message]) -> None:
        for kind, event_id in messages:
            self.publish(kind, event_id)

    def read(self, consumer: str, count: int, block_ms: int) -> list[BusMessage]:
        return drain(self._queue, count, block_ms)

    def ack(self, messages: Sequence[BusMessage]) -> None:
        """Nothing to do: a message is gone from the queue once read."""

    def ping(self) -> None:
        """Always reachable."""

    def close(self) -> None:
        """Nothing to release."""


class RedisStreamBus:
    """The `oo:events` Redis Stream, read through the learners' consumer group.

    How a learner that crashed, or never came back, loses no message is `ConsumerGroup`'s:
    its own pending messages first, then those another consumer left pending for longer than
    `claim_idle_ms`, then new ones.
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
        self._group = ConsumerGroup(
            self.client, stream, group, claim_idle_ms=claim_idle_ms, clock=clock
        )

    blocking = True

    def publish(self, kind: MessageKind, event_id: str) -> None:
        self.publish_many([(kind, event_id)])

    def publish_many(self, messages: Sequence[Message]) -> None:
        """One round trip for all of `messages` (a pipeline, not a transaction)."""
        pipe = self.client.pipeline(transaction=False)
        for kind, event_id in messages:
            pipe.xadd(
                self.stream,
                {"kind": kind, "event_id": event_id},
                maxlen=self.maxlen,
                approximate=True,
            )
        pipe.execute()

    def read(self, consumer: str, count: int, block_ms: int) -> list[BusMessage]:
        entries = self._group.read(consumer, count, block_ms)
        # Trimmed while pending: nothing to learn from, and acknowledged so that the pending
        # list does not hand the same ids back.
        self._group.ack([entry.id for entry in entries if not entry.fields])
        return [_message(entry) for entry in entries if entry.fields]

    def ack(self, messages: Sequence[BusMessage]) -> None:
        self._group.ack([m.id for m in messages])

    def ping(self) -> None:
        self.client.ping()

    def close(self) -> None:
        self.client.close()


def _message(entry: StreamEntry) -> BusMessage:
    kind = entry.fields[b"kind"].decode()
    return BusMessage(
        entry.id, "activate" if kind == "activate" else "reward", entry.fields[b"event_id"].decode()
    )


def make_bus(redis_url: str | None) -> EventBus:
    return RedisStreamBus(redis_url) if redis_url else InProcessBus()
