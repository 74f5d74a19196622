"""Reading a Redis Stream through a consumer group, so that no entry is lost to a crash.

Both of oO's streams (the decision bus, `bandit.bus`, and the signals stream,
`integrations.signal_stream`) are read this way; they differ only in what their entries say,
which each decodes from the raw entries `ConsumerGroup.read` returns.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis


@dataclass(frozen=True, slots=True)
class StreamEntry:
    """One entry as Redis returned it. `fields` is empty for an entry trimmed from the stream
    while it was pending: its id is all that is left, and the reader should acknowledge it."""

    id: str
    fields: dict[bytes, bytes]


class ConsumerGroup:
    """One consumer group on one stream: created on demand, read without losing entries.

    An entry delivered to a consumer stays pending until acknowledged, so a reader that dies
    between reading and acting loses nothing, if somebody reads its pending entries again:

    - a consumer first re-reads its own pending entries, so one restarted under the same name
      resumes where it crashed;
    - entries another consumer left pending for longer than `claim_idle_ms` are claimed
      (`XAUTOCLAIM`), so those of a consumer that never comes back are not pending forever. The
      claim runs at the first read and then at most once per `claim_idle_ms` (on `clock`, in
      seconds), a cost of one round trip;
    - then new entries, waiting up to `block_ms` for the first.

    The group is created with the stream (`MKSTREAM`), from the stream's first entry, at the
    first read, and again when Redis answers `NOGROUP` (it restarted without persistence, or the
    stream was deleted): that read returns nothing and the next one reads the new group.
    """

    def __init__(
        self,
        client: redis.Redis[bytes],
        stream: str,
        group: str,
        *,
        claim_idle_ms: int = 60_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if claim_idle_ms < 0:
            raise ValueError(f"`claim_idle_ms` must be at least 0 (got {claim_idle_ms})")
        self.client = client
        self.stream = stream
        self.group = group
        self.claim_idle_ms = claim_idle_ms
        self._clock = clock
        self._pending_done: set[str] = set()
        # Not 0: a monotonic clock reads little more than the uptime, and a reader started
        # within `claim_idle_ms` of boot would leave a dead consumer's entries unclaimed.
        self._last_claim = -math.inf

    def ensure(self) -> None:
        """Create the group (and the stream) unless it exists."""
        try:
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read(self, consumer: str, count: int, block_ms: int) -> list[StreamEntry]:
        """Up to `count` entries for `consumer`: its own pending ones, else claimed ones, else
        new ones. Every entry returned must be acknowledged (`ack`) once acted on, also one the
        caller cannot decode: until then it is delivered again."""
        try:
            return self._read(consumer, count, block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure()
            self._pending_done.discard(consumer)  # a new group: nothing of ours is pending
            return []

    def _read(self, consumer: str, count: int, block_ms: int) -> list[StreamEntry]:
        if consumer not in self._pending_done:
            self.ensure()
            own = _entries(
                self.client.xreadgroup(self.group, consumer, {self.stream: "0"}, count=count)
            )
            if own:
                return own
            self._pending_done.add(consumer)
        now = self._clock()
        if now - self._last_claim > self.claim_idle_ms / 1000:
            self._last_claim = now
            claimed = self.client.xautoclaim(
                self.stream, self.group, consumer, self.claim_idle_ms, "0-0", count=count
            )
            # [next cursor, entries, ids of entries gone from the stream (Redis 7)]
            entries = _stream_entries(claimed[1] if isinstance(claimed, list | tuple) else [])
            if entries:
                return entries
        fresh = self.client.xreadgroup(
            self.group, consumer, {self.stream: ">"}, count=count, block=block_ms
        )
        return _entries(fresh)

    def ack(self, ids: Sequence[str]) -> None:
        """Acknowledge entries: they leave the group's pending list and are not read again."""
        if ids:
            self.client.xack(self.stream, self.group, *ids)  # type: ignore[no-untyped-call]


def _entries(response: object) -> list[StreamEntry]:
    """The entries of an `XREADGROUP` response (one stream's worth, or nothing)."""
    if not response:
        return []
    entries: list[object] = []
    for _stream, stream_entries in response:  # type: ignore[attr-defined]
        entries.extend(stream_entries)
    return _stream_entries(entries)


def _stream_entries(entries: Sequence[object]) -> list[StreamEntry]:
    read = []
    for entry in entries:
        entry_id: bytes | str | None
        fields: dict[bytes, bytes] | None
        entry_id, fields = entry  # type: ignore[misc]
        if entry_id is None:
            continue  # Redis 6.2's XAUTOCLAIM answers nil for an entry deleted meanwhile
        read.append(
            StreamEntry(
                entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id),
                fields or {},
            )
        )
    return read
