"""Integrations as signal sources: what changed at Todoist or in the calendar becomes a signal.

A recommend gathers the person's open Todoist tasks and calendar free/busy anyway
(`integrations.connections.Integrations.gather`). `LiveSignals` looks at each gathered result
and, when something meaningful changed since the last look, emits normalized signals through
`SignalIngest` (stored, then published on the `signals` stream), like any other producer:

- ``todoist.task_completed`` (value 1, source ``todoist``): a task that was open at the previous
  fetch is no longer open. Only keyed hashes of task ids are kept, in memory, per person; never
  titles. The first fetch (after connecting, or after this process started) sets the baseline
  and emits nothing.
- ``calendar.busy_next_2h`` (1 busy / 0 free) and ``calendar.meetings_today`` (busy intervals
  touching the person's local today), source ``google-calendar``: emitted when the value differs
  from the last one emitted for that person (checked against the signal store once per person
  and process, so a restart does not repeat the current values).

Emission never slows or fails a recommend: `observe_*` only put a small item (task ids, two
calendar numbers) on a bounded queue (dropped and counted when full); one daemon thread hashes,
diffs and ingests.
Contract: docs/signals.md; per provider: docs/integrations.md.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import secrets
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

from prometheus_client import Counter

from integrations import calendar, todoist
from integrations.calendar import SOON, FreeBusy, window
from integrations.signal_stream import SignalIngest
from integrations.signals import Signal

log = logging.getLogger(__name__)

TASK_COMPLETED = "todoist.task_completed"
BUSY_NEXT_2H = "calendar.busy_next_2h"
MEETINGS_TODAY = "calendar.meetings_today"
MAX_COMPLETIONS_PER_FETCH = 20
"""More tasks than this leaving the open list at once is a project archived or deleted, not a
burst of work done: the first ones are emitted, the rest counted as suppressed."""
MAX_PEOPLE = 10_000
QUEUE_SIZE = 1_000
STORE_LOOKBACK = timedelta(days=2)
"""How far back the store is read for the last calendar value emitted (once per person)."""

OBSERVED = Counter(
    "oo_integration_observations_total",
    "Gathered integration results looked at for signals",
    ["provider", "outcome"],
)
EMITTED = Counter("oo_integration_signals_total", "Signals emitted by integrations", ["type"])
SUPPRESSED = Counter(
    "oo_integration_signals_suppressed_total",
    "Task completions not emitted past the per-fetch cap",
)


@dataclass(frozen=True, slots=True)
class _Tasks:
    person: str
    at: datetime
    ids: tuple[str, ...]
    """Raw ids only while queued: the worker keeps their hashes and drops these."""


@dataclass(frozen=True, slots=True)
class _Calendar:
    person: str
    at: datetime
    busy_next_2h: bool
    meetings_today: int


@dataclass(frozen=True, slots=True)
class _Forget:
    person: str
    provider: str | None


@dataclass(frozen=True, slots=True)
class _Seen:
    at: datetime
    ids: frozenset[bytes]


@dataclass(slots=True)
class _Emitted:
    at: datetime
    values: dict[str, float]


def calendar_values(free_busy: FreeBusy, now: datetime, tz: tzinfo) -> tuple[bool, int]:
    """(busy within the next two hours, busy intervals touching the person's local today)."""
    moment = now.astimezone(UTC)
    day_start, _ = window(now, tz)
    day_end = (day_start.astimezone(tz) + timedelta(days=1)).astimezone(UTC)
    busy = free_busy.busy
    soon = any(b.start < moment + SOON and b.end > moment for b in busy)
    today = sum(1 for b in busy if b.end > day_start and b.start < day_end)
    return soon, today


class LiveSignals:
    """Turns gathered integration results into signals, off the request path.

    Thread-safe: `observe` and `forget` are called from api threads; one worker thread owns
    the per-person state and talks to `SignalIngest`.
    """

    def __init__(
        self,
        ingest: SignalIngest,
        *,
        max_people: int = MAX_PEOPLE,
        queue_size: int = QUEUE_SIZE,
        max_completions: int = MAX_COMPLETIONS_PER_FETCH,
    ) -> None:
        self.ingest = ingest
        self.max_people = max_people
        self.max_completions = max_completions
        self._key = secrets.token_bytes(16)  # ids are hashed with a key that never leaves here
        self._queue: queue.Queue[_Tasks | _Calendar | _Forget | None] = queue.Queue(queue_size)
        self._tasks: OrderedDict[str, _Seen] = OrderedDict()
        self._calendar: OrderedDict[str, _Emitted] = OrderedDict()
        self._pending = 0
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="integration-signals", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"LiveSignals(tasks={len(self._tasks)}, calendars={len(self._calendar)})"

    # ------------------------------------------------------------------ request path (cheap)

    def observe_tasks(self, person: str, now: datetime, task_ids: Iterable[str]) -> None:
        """A successful fetch of `person`'s open tasks at `now` (ids only, never titles)."""
        self._put(_Tasks(person, now, tuple(task_ids)), todoist.PROVIDER)

    def observe_calendar(self, person: str, now: datetime, tz: tzinfo, free_busy: FreeBusy) -> None:
        soon, today = calendar_values(free_busy, now, tz)
        self._put(_Calendar(person, now, soon, today), calendar.PROVIDER)

    def forget(self, person: str, provider: str | None = None) -> None:
        """Drop what is remembered of `person` (one provider, or all): on connect, disconnect,
        needs_reconnect and erasure. The next fetch sets a new baseline."""
        self._put(_Forget(person, provider), "forget")

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until everything observed so far is processed; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout=timeout)

    def close(self, timeout: float = 2.0) -> None:
        try:
            self._queue.put(None, timeout=timeout)
        except queue.Full:
            return  # daemon thread: it ends with the process
        self._thread.join(timeout=timeout)

    def _hash(self, task_id: str) -> bytes:
        return hashlib.blake2b(task_id.encode(), key=self._key, digest_size=12).digest()

    def _put(self, item: _Tasks | _Calendar | _Forget, label: str) -> None:
        with self._idle:
            self._pending += 1
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()
            OBSERVED.labels(label, "dropped").inc()
            log.warning("integration signals: queue full; a %s observation was dropped", label)

    # ---------------------------------------------------------------------- worker thread

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            try:
                if isinstance(item, _Tasks):
                    self._on_tasks(item)
                elif isinstance(item, _Calendar):
                    self._on_calendar(item)
                else:
                    self._on_forget(item)
            except Exception:
                log.warning("integration signals: an observation failed", exc_info=True)
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def _on_tasks(self, item: _Tasks) -> None:
        seen = self._tasks.get(item.person)
        if seen is not None and item.at < seen.at:
            OBSERVED.labels(todoist.PROVIDER, "stale").inc()
            return  # an older fetch finished after a newer one: it must not undo it
        ids = frozenset(self._hash(task_id) for task_id in item.ids)
        self._tasks[item.person] = _Seen(item.at, ids)
        self._tasks.move_to_end(item.person)
        while len(self._tasks) > self.max_people:
            self._tasks.popitem(last=False)
        if seen is None:
            OBSERVED.labels(todoist.PROVIDER, "baseline").inc()
            return
        gone = len(seen.ids - ids)
        OBSERVED.labels(todoist.PROVIDER, "changed" if gone else "unchanged").inc()
        emitted = min(gone, self.max_completions)
        if gone > emitted:
            SUPPRESSED.inc(gone - emitted)
            log.info(
                "integration signals: %d tasks left %s's open list at once; %d emitted",
                gone,
                item.person,
                emitted,
            )
        for _ in range(emitted):
            self._emit(item.person, TASK_COMPLETED, 1.0, item.at, todoist.PROVIDER)

    def _on_calendar(self, item: _Calendar) -> None:
        last = self._calendar.get(item.person)
        if last is not None and item.at < last.at:
            OBSERVED.labels(calendar.PROVIDER, "stale").inc()
            return
        if last is None:
            last = _Emitted(item.at, self._stored_calendar(item.person, item.at))
            self._calendar[item.person] = last
            while len(self._calendar) > self.max_people:
                self._calendar.popitem(last=False)
        self._calendar.move_to_end(item.person)
        last.at = item.at
        changed = False
        for kind, value in (
            (BUSY_NEXT_2H, 1.0 if item.busy_next_2h else 0.0),
            (MEETINGS_TODAY, float(item.meetings_today)),
        ):
            if last.values.get(kind) != value and self._emit(
                item.person, kind, value, item.at, calendar.PROVIDER
            ):
                last.values[kind] = value
                changed = True
        OBSERVED.labels(calendar.PROVIDER, "changed" if changed else "unchanged").inc()

    def _stored_calendar(self, person: str, at: datetime) -> dict[str, float]:
        """The calendar values last emitted for `person`, from the store (after a restart)."""
        latest = self.ingest.store.latest(person, at - STORE_LOOKBACK)
        return {
            kind: latest[kind].value for kind in (BUSY_NEXT_2H, MEETINGS_TODAY) if kind in latest
        }

    def _on_forget(self, item: _Forget) -> None:
        if item.provider in (None, todoist.PROVIDER):
            self._tasks.pop(item.person, None)
        if item.provider in (None, calendar.PROVIDER):
            self._calendar.pop(item.person, None)

    def _emit(self, person: str, kind: str, value: float, at: datetime, source: str) -> bool:
        try:
            signal = Signal(type=kind, value=value, occurred_at=at, source=source)
            self.ingest.ingest(person, signal)
        except Exception as exc:
            log.warning("integration signals: %s for %s not stored (%s)", kind, person, exc)
            return False
        EMITTED.labels(kind).inc()
        return True
