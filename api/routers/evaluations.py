"""Counterfactual evaluations over the decision log, run as in-memory background jobs.

`POST` validates the request and resolves the policies at once (a bad name is a 400), then runs
the evaluation in a thread; `GET` shows its status and progress, then the result; `DELETE`
cancels a running one and forgets it. Jobs live in this process only: they are analysis runs,
re-run at will, not records (a restart forgets them; with several api workers, ask the one that
started it, or run `oo evaluate`).
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response

from api.auth.principal import Role
from api.deps import ServicesDep, requires
from api.errors import BadRequest, NotFound
from api.schemas import EvaluationCreate, EvaluationPublic, EvaluationResult
from api.services import Services
from bandit.events import utcnow
from rewards import evaluation

router = APIRouter(
    prefix="/v1/evaluations",
    tags=["evaluations"],
    dependencies=[Depends(requires(Role.ANALYST))],
)

MAX_JOBS = 100
"""Finished jobs beyond this many are forgotten, oldest first."""

Status = Literal["running", "succeeded", "failed", "cancelled"]


@dataclass
class Job:
    id: str
    request: EvaluationCreate
    created_at: datetime
    cancel: threading.Event = field(default_factory=threading.Event)
    status: Status = "running"
    done: int = 0
    total: int = 0
    finished_at: datetime | None = None
    error: str | None = None
    result: evaluation.Evaluation | None = None
    thread: threading.Thread | None = None

    def public(self) -> EvaluationPublic:
        return EvaluationPublic(
            id=self.id,
            status=self.status,
            done=self.done,
            total=self.total,
            created_at=self.created_at,
            finished_at=self.finished_at,
            request=self.request,
            error=self.error,
            result=None
            if self.result is None
            else EvaluationResult.model_validate(self.result.as_json()),
        )


@dataclass(frozen=True)
class _Either:
    """Cancelled by the job's own event or by the process stopping."""

    first: threading.Event
    second: threading.Event

    def is_set(self) -> bool:
        return self.first.is_set() or self.second.is_set()


class Jobs:
    """The evaluation jobs of this process."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, services: Services, body: EvaluationCreate) -> Job:
        start, end = _utc(body.start), _utc(body.end)
        if start is not None and end is not None and start >= end:
            raise BadRequest(f"`start` ({start.isoformat()}) must be before `end`", target="start")
        try:
            targets = evaluation.resolve(body.policies, services.registry)
        except evaluation.EvaluationError as exc:
            raise BadRequest(str(exc), target=exc.target) from None
        job = Job(id=uuid.uuid4().hex, request=body, created_at=utcnow())

        def progress(done: int, total: int) -> None:
            job.done, job.total = done, total

        def work() -> None:
            try:
                job.result = evaluation.evaluate(
                    services.store,
                    targets,
                    surface=body.surface,
                    model_key=body.model_key,
                    start=start,
                    end=end,
                    reward_model_name=body.reward_model,
                    on_progress=progress,
                    cancel=_Either(job.cancel, services.stop_event),
                )
                job.status = "succeeded"
            except evaluation.EvaluationCancelled:
                job.status = "cancelled"
            except Exception as exc:  # reported on the job; the server keeps serving
                job.error = f"{type(exc).__name__}: {exc}"
                job.status = "failed"
            finally:
                job.finished_at = utcnow()

        job.thread = threading.Thread(target=work, name=f"evaluation-{job.id}", daemon=True)
        with self._lock:
            self._jobs[job.id] = job
            self._forget_finished()
        job.thread.start()
        return job

    def get(self, job_id: str) -> Job:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None:
            raise NotFound(f"no evaluation has id {job_id!r}", target="id")
        return job

    def all(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def delete(self, job_id: str) -> None:
        job = self.get(job_id)
        job.cancel.set()
        if job.thread is not None:
            job.thread.join(timeout=10)
        with self._lock:
            self._jobs.pop(job_id, None)

    def _forget_finished(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.status != "running"]
        for job_id in finished[: max(0, len(self._jobs) - MAX_JOBS)]:
            del self._jobs[job_id]


_JOBS_LOCK = threading.Lock()


def get_jobs(request: Request) -> Jobs:
    """The app's job registry, made on first use (kept on `app.state`)."""
    with _JOBS_LOCK:
        jobs: Jobs | None = getattr(request.app.state, "evaluations", None)
        if jobs is None:
            jobs = Jobs()
            request.app.state.evaluations = jobs
        return jobs


JobsDep = Annotated[Jobs, Depends(get_jobs)]


def _utc(moment: datetime | None) -> datetime | None:
    if moment is None:
        return None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@router.post("", response_model=EvaluationPublic, status_code=201)
def create_evaluation(
    body: EvaluationCreate, services: ServicesDep, jobs: JobsDep
) -> EvaluationPublic:
    """Start evaluating `policies` over the learned decisions of [start, end) on `surface`.

    Poll `GET /v1/evaluations/{id}` for progress and the result.
    """
    return jobs.start(services, body).public()


@router.get("", response_model=list[EvaluationPublic])
def list_evaluations(jobs: JobsDep) -> list[EvaluationPublic]:
    """The evaluations this process holds, oldest first."""
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
