"""Counterfactual evaluations: the background jobs of `/v1/evaluations` (and the analysis page
that draws them), and the evaluation of a DSJSON file that `oo evaluate` and `oo search-policies`
read instead of the database.

A job is validated and its policies resolved at once (a bad name is an `EvaluationError`), then
it runs in a thread of the process that accepted it; its state lives in the shared `jobs` table
(`api/jobstore.py`), so every api process answers for it, and a job whose process stopped reads
as failed.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from itertools import islice
from pathlib import Path
from typing import Literal

from api.errors import BadRequest, NotFound
from api.jobstore import AnyOf, JobRow, LocalRuns, Tracker
from api.schemas import EvaluationCreate, EvaluationPublic, EvaluationResult
from api.services.process import Services
from bandit.features import action_lines, adf_example
from rewards import evaluation
from rewards.dsjson import ImportedEvent, bounded_lines, read_dsjson
from rewards.evaluation import Evaluation, LoggedEvent, RewardModelName

KIND = "evaluation"
MAX_JOBS = 100
"""Finished jobs beyond this many are forgotten, oldest first."""

Status = Literal["running", "succeeded", "failed", "cancelled"]


def public(row: JobRow) -> EvaluationPublic:
    return EvaluationPublic(
        id=row.id,
        status="running" if row.status == "queued" else row.status,
        done=row.done,
        total=row.total,
        created_at=row.created_at,
        finished_at=row.finished_at,
        request=EvaluationCreate.model_validate(row.request),
        error=row.error,
        result=None if row.result is None else EvaluationResult.model_validate(row.result),
    )


@dataclass(frozen=True)
class Job:
    """One evaluation as the table holds it, with the full result object when this process ran
    it (the analysis page draws from that; the table keeps the JSON summary)."""

    row: JobRow
    result: evaluation.Evaluation | None

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def status(self) -> Status:
        return public(self.row).status

    @property
    def created_at(self) -> datetime:
        return self.row.created_at

    @property
    def request(self) -> EvaluationCreate:
        return EvaluationCreate.model_validate(self.row.request)

    def public(self) -> EvaluationPublic:
        return public(self.row)


class Jobs:
    """Evaluation jobs: state in the shared table, threads of the jobs this process runs."""

    def __init__(self, services: Services) -> None:
        self.store = services.jobs
        self._runs = LocalRuns()
        self._results: OrderedDict[str, evaluation.Evaluation] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, services: Services, body: EvaluationCreate) -> JobRow:
        start, end = body.start, body.end
        if start is not None and end is not None and start >= end:
            raise BadRequest(f"`start` ({start.isoformat()}) must be before `end`", target="start")
        targets = evaluation.resolve(body.policies, services.registry)
        row = self.store.create(KIND, body.model_dump(mode="json"), keep=MAX_JOBS)
        cancel = threading.Event()
        tracker = Tracker(self.store, KIND, row.id, cancel)

        def work() -> None:
            try:
                result = evaluation.evaluate(
                    services.store,
                    targets,
                    surface=body.surface,
                    model_key=body.model_key,
                    start=start,
                    end=end,
                    reward_model_name=body.reward_model,
                    on_progress=lambda done, total: tracker.report(done, total),
                    cancel=AnyOf(cancel, services.stop_event),
                )
                with self._lock:
                    self._results[row.id] = result
                    while len(self._results) > MAX_JOBS:
                        self._results.popitem(last=False)
                tracker.finish("succeeded", result=result.as_json)
            except evaluation.EvaluationCancelled:
                tracker.finish("cancelled")
            except Exception as exc:  # reported on the job; the server keeps serving
                tracker.finish("failed", error=f"{type(exc).__name__}: {exc}")
            finally:
                self._runs.done(row.id)

        thread = threading.Thread(target=work, name=f"evaluation-{row.id}", daemon=True)
        tracker.start()
        self._runs.start(row.id, cancel, thread)
        return row

    def _job(self, row: JobRow) -> Job:
        with self._lock:
            result = self._results.get(row.id) if row.status == "succeeded" else None
        return Job(row, result)

    def get(self, job_id: str) -> Job:
        row = self.store.get(KIND, job_id)
        if row is None:
            raise NotFound(f"no evaluation has id {job_id!r}", target="id")
        return self._job(row)

    def all(self) -> list[Job]:
        """Every evaluation kept, oldest first."""
        return [self._job(row) for row in self.store.all(KIND)]

    def delete(self, job_id: str) -> None:
        if not self.store.request_cancel(KIND, job_id):
            raise NotFound(f"no evaluation has id {job_id!r}", target="id")
        self._runs.stop(job_id)
        self.store.delete(KIND, job_id)
        with self._lock:
            self._results.pop(job_id, None)


# --- a DSJSON file instead of the database ---------------------------------------------------


def _logged(event: ImportedEvent) -> LoggedEvent:
    lines = adf_example(event.context, action_lines(event.actions))
    return LoggedEvent(
        event_id=event.event_id,
        created_at=event.timestamp,
        pmf=event.pmf,
        chosen_index=event.chosen_index,
        reward=event.reward,
        example=tuple(lines),
    )


def file_events(path: Path) -> Iterator[LoggedEvent]:
    """Learnable events of a DSJSON file (`_skipLearn` ones are never evaluated)."""
    with open(path, "rb") as handle:
        for event in read_dsjson(bounded_lines(handle), strict=True):
            if not event.skip_learn:
                yield _logged(event)


def _batches(events: Iterator[LoggedEvent], size: int) -> Iterator[list[LoggedEvent]]:
    while chunk := list(islice(events, size)):
        yield chunk


def evaluate_file(
    path: Path,
    targets: list[evaluation.Target],
    *,
    batch: int,
    reward_model: RewardModelName,
    on_progress: evaluation.ProgressCallback,
) -> Evaluation:
    """`targets` evaluated on the learnable events of the DSJSON file at `path`, `batch` at a
    time (`oo evaluate --log`)."""
    # A first pass reads the ranges the finite-sample intervals need, as the store's summary does.
    total, r_min, r_max, p_min = 0, math.inf, -math.inf, 1.0
    for event in file_events(path):
        total += 1
        r_min, r_max = min(r_min, event.reward), max(r_max, event.reward)
        p_min = min(p_min, event.propensity)
    reward_range, max_weight = evaluation.ranges(
        r_min if total else None, r_max if total else None, p_min
    )
    on_progress(0, total)
    return evaluation.run(
        _batches(file_events(path), batch),
        targets,
        total=total,
        reward_range=reward_range,
        max_weight=max_weight,
        reward_model_name=reward_model,
        on_progress=on_progress,
    )
