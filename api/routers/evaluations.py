"""Counterfactual evaluations over the decision log, run as background jobs.

`POST` validates the request and resolves the policies at once (a bad name is a 400), then runs
the evaluation in a thread of the process that accepted it; `GET` shows its status and progress,
then the result; `DELETE` cancels a running one and forgets it. The job's state lives in the
shared `jobs` table (`api/jobstore.py`), so every api process answers for it, and a job whose
process stopped reads as failed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response

from api.auth.principal import Role
from api.deps import ServicesDep, requires
from api.errors import BadRequest, NotFound
from api.jobstore import AnyOf, JobRow, LocalRuns, Tracker
from api.schemas import EvaluationCreate, EvaluationPublic, EvaluationResult
from api.services.process import Services
from rewards import evaluation

router = APIRouter(
    prefix="/v1/evaluations",
    tags=["evaluations"],
    dependencies=[Depends(requires(Role.ANALYST))],
)

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


_JOBS_LOCK = threading.Lock()


def get_jobs(request: Request, services: ServicesDep) -> Jobs:
    """The app's job registry, made on first use (kept on `app.state`)."""
    with _JOBS_LOCK:
        jobs: Jobs | None = getattr(request.app.state, "evaluations", None)
        if jobs is None:
            jobs = Jobs(services)
            request.app.state.evaluations = jobs
        return jobs


JobsDep = Annotated[Jobs, Depends(get_jobs)]


@router.post("", response_model=EvaluationPublic, status_code=201)
def create_evaluation(
    body: EvaluationCreate, services: ServicesDep, jobs: JobsDep
) -> EvaluationPublic:
    """Start evaluating `policies` over the learned decisions of [start, end) on `surface`.

    Poll `GET /v1/evaluations/{id}` for progress and the result.
    """
    return public(jobs.start(services, body))


@router.get("", response_model=list[EvaluationPublic])
def list_evaluations(jobs: JobsDep) -> list[EvaluationPublic]:
    """Every evaluation kept (of any api process), oldest first."""
    return [job.public() for job in jobs.all()]


@router.get("/{evaluation_id}", response_model=EvaluationPublic)
def read_evaluation(evaluation_id: str, jobs: JobsDep) -> EvaluationPublic:
    """Status, progress and, once succeeded, the result."""
    return jobs.get(evaluation_id).public()


@router.delete("/{evaluation_id}", status_code=204, response_class=Response)
def delete_evaluation(evaluation_id: str, jobs: JobsDep) -> Response:
    """Cancel a running evaluation (between batches) and forget it."""
    jobs.delete(evaluation_id)
    return Response(status_code=204)
