"""One runner for every background job: evaluations, policy searches, Personalizer evaluations
and feature importances.

A job's state lives in the shared `jobs` table (`api.jobstore`), so any api process answers
`get`, `list` and `cancel` for a job another one runs. The process that accepts a job runs it in
a thread; its :class:`~api.jobstore.Tracker` writes progress and a heartbeat and carries a
cancellation requested anywhere back to the job. The outcome is stored as JSON in the row; the
result object itself stays in a bounded cache of the process that ran it, and any other process
rebuilds it from the row (`JobKind.from_json`) to draw its charts or promote a search candidate.

The runner is built once at start-up (`api.services.start`) and reached through
`api.deps.JobRunnerDep`; each kind of job is a :class:`JobKind` declared by the module that owns
its wire mapping.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from api.jobstore import AnyOf, JobIdTaken, JobRow, JobStore, LocalRuns, Tracker

R = TypeVar("R")

__all__ = ["Job", "JobContext", "JobIdTaken", "JobKind", "JobRunner"]


@dataclass(frozen=True)
class JobKind(Generic[R]):
    """A kind of job: its name in the jobs table, how many finished ones are kept, and how its
    result is stored and rebuilt.

    `cancelled` are the exceptions a job raises when it stops because it was cancelled (the job
    then reads `cancelled`, not `failed`). `from_json` rebuilds the result object from what
    `to_json` stored, for the processes that did not run the job.
    """

    name: str
    keep: int
    to_json: Callable[[R], dict[str, Any]]
    cancelled: tuple[type[BaseException], ...] = ()
    from_json: Callable[[dict[str, Any]], R] | None = None


@dataclass(frozen=True)
class Job(Generic[R]):
    """A job as the table holds it, with the result object once it succeeded (this process's,
    or rebuilt from the row where the kind can)."""

    row: JobRow
    result: R | None

    @property
    def id(self) -> str:
        return self.row.id


class JobContext:
    """What a running job is handed: its progress reporter and its cancel flag (set when the job
    is cancelled from any process or the server stops)."""

    def __init__(self, tracker: Tracker, cancel: AnyOf) -> None:
        self._tracker = tracker
        self.cancel = cancel

    def report(self, done: int, total: int, detail: dict[str, Any] | None = None) -> None:
        """Progress so far; written to the table at most every `jobstore.WRITE_INTERVAL`."""
        self._tracker.report(done, total, detail)


class JobRunner:
    """Submits, reads, lists and cancels jobs of every kind over the shared jobs table."""

    def __init__(self, store: JobStore, stop: threading.Event) -> None:
        self.store = store
        self.stop = stop
        self._runs = LocalRuns()
        self._results: dict[str, OrderedDict[str, Any]] = {}
        self._lock = threading.Lock()

    def submit(
        self,
        kind: JobKind[R],
        request: dict[str, Any],
        work: Callable[[JobContext], R],
        *,
        job_id: str | None = None,
    ) -> JobRow:
        """Record a `running` job and run `work` in a thread of this process.

        `request` is what the job was asked (JSON), kept for every process to show; `job_id` is
        the client's id where the API lets it choose one.

        Raises
        ------
        JobIdTaken
            When a job of `kind` already has `job_id`.
        """
        row = self.store.create(kind.name, request, keep=kind.keep, job_id=job_id)
        cancel = threading.Event()
        tracker = Tracker(self.store, kind.name, row.id, cancel)
        context = JobContext(tracker, AnyOf(cancel, self.stop))

        def run() -> None:
            try:
                result = work(context)
                self._keep(kind, row.id, result)
                tracker.finish("succeeded", result=lambda: kind.to_json(result))
            except kind.cancelled:
                tracker.finish("cancelled")
            except Exception as exc:  # reported on the job; the server keeps serving
                tracker.finish("failed", error=f"{type(exc).__name__}: {exc}")
            finally:
                self._runs.done((kind.name, row.id))

        thread = threading.Thread(target=run, name=f"{kind.name}-{row.id}", daemon=True)
        tracker.start()
        self._runs.start((kind.name, row.id), cancel, thread)
        return row

    def get(self, kind: JobKind[R], job_id: str) -> Job[R] | None:
        """The job, as any process recorded it; None when there is none."""
        row = self.store.get(kind.name, job_id)
        return None if row is None else self._job(kind, row)

    def list(self, kind: JobKind[R]) -> list[Job[R]]:
        """Every job of `kind` kept, oldest first."""
        return [self._job(kind, row) for row in self.store.all(kind.name)]

    def cancel(self, kind: JobKind[R], job_id: str) -> bool:
        """Stop the job (between batches, wherever it runs) and forget it; False when there is
        no such job."""
        if not self.store.request_cancel(kind.name, job_id):
            return False
        self._runs.stop((kind.name, job_id))
        self.store.delete(kind.name, job_id)
        with self._lock:
            self._results.get(kind.name, OrderedDict()).pop(job_id, None)
        return True

    def running_here(self, kind: JobKind[Any], job_id: str) -> bool:
        """True while this process runs the job's thread."""
        return (kind.name, job_id) in self._runs

    def _keep(self, kind: JobKind[R], job_id: str, result: R) -> None:
        with self._lock:
            results = self._results.setdefault(kind.name, OrderedDict())
            results[job_id] = result
            while len(results) > kind.keep:
                results.popitem(last=False)

    def _job(self, kind: JobKind[R], row: JobRow) -> Job[R]:
        result: R | None = None
        if row.status == "succeeded":
            with self._lock:
                result = self._results.get(kind.name, OrderedDict()).get(row.id)
            if result is None and row.result is not None and kind.from_json is not None:
                result = kind.from_json(row.result)
        return Job(row, result)
