"""Background analysis jobs (evaluations, policy searches) shared through the database.

Several api processes run behind a load balancer, so a job's state lives in the `jobs` table:
the process that accepts a job runs it in a thread (see :class:`Tracker`) and writes its
progress, heartbeat and outcome there; any process answers `GET`, list and `DELETE` from the
table. Cancelling sets `cancel_requested` (or deletes the row); the running process polls the
row and sets its own cancel event. A job whose row has not been touched for
:data:`STALE_AFTER` seconds while `running` belonged to a process that stopped: start-up and
reads mark it failed.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import SQLModel

from bandit.events import utcnow
from bandit.tables import UTCDateTime

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINISHED: tuple[JobStatus, ...] = ("succeeded", "failed", "cancelled")

STALE_AFTER = 60.0
"""Seconds without a heartbeat after which a `running` job is taken for abandoned."""
HEARTBEAT = 5.0
"""Seconds between heartbeats of a running job when its progress does not change."""
WRITE_INTERVAL = 0.5
"""At most this often (seconds) a running job writes its progress and polls for cancellation."""
STOPPED = "the process running it stopped"

jobs = sa.Table(
    "jobs",
    SQLModel.metadata,
    # Ids are unique per kind (the Personalizer API lets clients choose them).
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("id", sa.String(256), primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("done", sa.BigInteger, nullable=False, default=0),
    sa.Column("total", sa.BigInteger, nullable=False, default=0),
    # Kind-specific progress beyond done/total (a search's candidates).
    sa.Column("detail", sa.JSON, nullable=True),
    sa.Column("request", sa.JSON, nullable=False),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("owner", sa.String(160), nullable=False),
    sa.Index("ix_jobs_kind_created", "kind", "created_at"),
    sa.Index("ix_jobs_status_updated", "status", "updated_at"),
)


@dataclass(frozen=True)
class JobRow:
    id: str
    kind: str
    status: JobStatus
    done: int
    total: int
    detail: dict[str, Any] | None
    request: dict[str, Any]
    result: dict[str, Any] | None
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    cancel_requested: bool
    owner: str


def _row(row: Any) -> JobRow:
    return JobRow(
        id=row.id,
        kind=row.kind,
        status=row.status,
        done=int(row.done),
        total=int(row.total),
        detail=row.detail,
        request=row.request,
        result=row.result,
        error=row.error,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        updated_at=row.updated_at,
        cancel_requested=bool(row.cancel_requested),
        owner=row.owner,
    )


def process_id() -> str:
    """Names one running service instance: host, pid and a per-start nonce."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class JobIdTaken(Exception):
    """Another job of the kind already has the id."""


class JobStore:
    def __init__(self, engine: Engine, owner: str | None = None) -> None:
        self.engine = engine
        self.owner = owner or process_id()

    def create(
        self, kind: str, request: dict[str, Any], *, keep: int, job_id: str | None = None
    ) -> JobRow:
        """A new `running` job owned by this process (`job_id`, or a fresh one); finished jobs
        of `kind` beyond `keep` are forgotten, oldest first. :class:`JobIdTaken` when `job_id`
        is in use."""
        now = utcnow()
        values: dict[str, Any] = {
            "id": job_id or uuid.uuid4().hex,
            "kind": kind,
            "status": "running",
            "done": 0,
            "total": 0,
            "detail": None,
            "request": request,
            "result": None,
            "error": None,
            "created_at": now,
            "started_at": now,
            "finished_at": None,
            "updated_at": now,
            "cancel_requested": False,
            "owner": self.owner,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(jobs.insert().values(**values))
        except IntegrityError:
            raise JobIdTaken(f"a {kind} job {values['id']!r} exists") from None
        with self.engine.begin() as conn:
            finished = (
                conn.execute(
                    sa.select(jobs.c.id)
                    .where(jobs.c.kind == kind, jobs.c.status.in_(FINISHED))
                    .order_by(jobs.c.created_at.desc(), jobs.c.id.desc())
                    .offset(keep)
                )
                .scalars()
                .all()
            )
            if finished:
                conn.execute(jobs.delete().where(jobs.c.id.in_(finished)))
        return JobRow(**values)

    def claim(self, kind: str, key: str, *, keep: int) -> bool:
        """Record that `key` (a scheduled run, say) is taken; False when a process took it first.

        The row's primary key makes the claim once across every process sharing the database;
        claims of `kind` beyond the `keep` newest are forgotten.
        """
        try:
            self.create(kind, {"claim": key}, keep=keep, job_id=key)
        except JobIdTaken:
            return False
        self.finish(kind, key, "succeeded")
        return True

    def get(self, kind: str, job_id: str) -> JobRow | None:
        self.fail_abandoned()
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(jobs).where(jobs.c.id == job_id, jobs.c.kind == kind)
            ).first()
        return None if row is None else _row(row)

    def all(self, kind: str) -> list[JobRow]:
        """Every job of `kind`, oldest first."""
        self.fail_abandoned()
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(jobs).where(jobs.c.kind == kind).order_by(jobs.c.created_at, jobs.c.id)
            ).all()
        return [_row(row) for row in rows]

    def progress(
        self, kind: str, job_id: str, done: int, total: int, detail: dict[str, Any] | None
    ) -> bool:
        """Record progress (and a heartbeat); True when the job should stop (cancel requested
        or the job deleted)."""
        with self.engine.begin() as conn:
            updated = conn.execute(
                jobs.update()
                .where(jobs.c.kind == kind, jobs.c.id == job_id, jobs.c.status == "running")
                .values(done=done, total=total, detail=detail, updated_at=utcnow())
            ).rowcount
            if not updated:
                return True
            cancel = conn.execute(
                sa.select(jobs.c.cancel_requested).where(jobs.c.kind == kind, jobs.c.id == job_id)
            ).scalar()
        return bool(cancel)

    def finish(
        self,
        kind: str,
        job_id: str,
        status: JobStatus,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        now = utcnow()
        with self.engine.begin() as conn:
            conn.execute(
                jobs.update()
                .where(jobs.c.kind == kind, jobs.c.id == job_id, jobs.c.status == "running")
                .values(status=status, result=result, error=error, finished_at=now, updated_at=now)
            )

    def request_cancel(self, kind: str, job_id: str) -> bool:
        """Ask the running process to stop the job; False when there is no such job."""
        with self.engine.begin() as conn:
            found = conn.execute(
                jobs.update()
                .where(jobs.c.id == job_id, jobs.c.kind == kind)
                .values(cancel_requested=True)
            ).rowcount
        return bool(found)

    def delete(self, kind: str, job_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(jobs.delete().where(jobs.c.id == job_id, jobs.c.kind == kind))

    def fail_abandoned(self, stale_after: float = STALE_AFTER) -> int:
        """Mark failed every `running` job whose process has not written for `stale_after`
        seconds; how many were."""
        now = utcnow()
        cutoff = now - timedelta(seconds=stale_after)
        with self.engine.begin() as conn:
            return int(
                conn.execute(
                    jobs.update()
                    .where(jobs.c.status == "running", jobs.c.updated_at < cutoff)
                    .values(status="failed", error=STOPPED, finished_at=now, updated_at=now)
                ).rowcount
            )


@dataclass(frozen=True)
class AnyOf:
    """Set when either event is: a job's own cancel, or the server stopping."""

    first: threading.Event
    second: threading.Event

    def is_set(self) -> bool:
        return self.first.is_set() or self.second.is_set()


class LocalRuns:
    """The jobs this process runs, by key: so deleting one here stops it at once (a job run by
    another process sees its row's cancel flag instead)."""

    def __init__(self) -> None:
        self._runs: dict[Hashable, tuple[threading.Event, threading.Thread]] = {}
        self._lock = threading.Lock()

    def start(self, key: Hashable, cancel: threading.Event, thread: threading.Thread) -> None:
        with self._lock:
            self._runs[key] = (cancel, thread)
        thread.start()

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._runs

    def done(self, key: Hashable) -> None:
        with self._lock:
            self._runs.pop(key, None)

    def stop(self, key: Hashable, timeout: float = 10.0) -> None:
        with self._lock:
            run = self._runs.get(key)
        if run is not None:
            cancel, thread = run
            cancel.set()
            thread.join(timeout=timeout)


class Tracker:
    """Carries one running job's progress to the table and its cancellation back.

    The job's thread reports progress in memory (:meth:`report`); a companion thread writes it
    at most every :data:`WRITE_INTERVAL` seconds (and a heartbeat every :data:`HEARTBEAT`),
    and sets `cancel` once the row asks for cancellation or is gone.
    """

    def __init__(self, store: JobStore, kind: str, job_id: str, cancel: threading.Event) -> None:
        self.store = store
        self.kind = kind
        self.job_id = job_id
        self.cancel = cancel
        self._lock = threading.Lock()
        self._now: tuple[int, int, dict[str, Any] | None] = (0, 0, None)
        self._written: tuple[int, int, dict[str, Any] | None] | None = None
        self._finished = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"job-tracker-{job_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def report(self, done: int, total: int, detail: dict[str, Any] | None = None) -> None:
        with self._lock:
            self._now = (done, total, detail)

    def _write(self) -> None:
        with self._lock:
            now = self._now
        if self.store.progress(self.kind, self.job_id, *now):
            self.cancel.set()
        self._written = now

    def _run(self) -> None:
        last = 0.0
        clock = 0.0
        while not self._finished.wait(WRITE_INTERVAL):
            clock += WRITE_INTERVAL
            with self._lock:
                changed = self._now != self._written
            if changed or clock - last >= HEARTBEAT:
                try:
                    self._write()
                except Exception:  # a database hiccup: the next tick tries again
                    continue
                last = clock

    def finish(
        self,
        status: JobStatus,
        *,
        result: Callable[[], dict[str, Any]] | None = None,
        error: str | None = None,
    ) -> None:
        """Stop the companion thread and record the outcome with the final progress."""
        self._finished.set()
        self._thread.join()
        with self._lock:
            done, total, detail = self._now
        self.store.progress(self.kind, self.job_id, done, total, detail)
        self.store.finish(
            self.kind, self.job_id, status, result=None if result is None else result(), error=error
        )
