"""Counterfactual evaluations over the decision log, run as background jobs.

`POST` validates the request and resolves the policies at once (a bad name is a 400), then runs
the evaluation on the shared job runner (`api/job_runner.py`) in a thread of the process that
accepted it; `GET` shows its status and progress, then the result; `DELETE` cancels a running
one and forgets it. Every api process answers for a job, and a job whose process stopped reads
as failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Response

from api.auth.principal import Role
from api.deps import JobRunnerDep, ServicesDep, requires
from api.errors import BadRequest, NotFound
from api.evaluation_wire import evaluation_result
from api.job_runner import JobContext, JobKind, JobRunner
from api.jobstore import JobRow
from api.schemas import EvaluationCreate, EvaluationPublic, EvaluationResult
from api.services import Services
from rewards.ope.errors import EvaluationCancelled, EvaluationError
from rewards.ope.results import Evaluation
from rewards.ope.runs import evaluate
from rewards.ope.targets import resolve

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
    result: Evaluation | None

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


def _stored(result: Evaluation) -> dict[str, Any]:
    return evaluation_result(result)


EVALUATIONS = JobKind[Evaluation](
    KIND, keep=MAX_JOBS, to_json=_stored, cancelled=(EvaluationCancelled,)
)


class Jobs:
    """Evaluation jobs, as the shared job runner holds them."""

    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner

    def start(self, services: Services, body: EvaluationCreate) -> JobRow:
        start, end = body.start, body.end
        if start is not None and end is not None and start >= end:
            raise BadRequest(f"`start` ({start.isoformat()}) must be before `end`", target="start")
        try:
            targets = resolve(body.policies, services.registry)
        except EvaluationError as exc:
            raise BadRequest(str(exc), target=exc.target) from None

        def work(job: JobContext) -> Evaluation:
            return evaluate(
                services.store,
                targets,
                surface=body.surface,
                model_key=body.model_key,
                start=start,
                end=end,
                reward_model_name=body.reward_model,
                on_progress=lambda done, total: job.report(done, total),
                cancel=job.cancel,
            )

        return self.runner.submit(EVALUATIONS, body.model_dump(mode="json"), work)

    def get(self, job_id: str) -> Job:
        job = self.runner.get(EVALUATIONS, job_id)
        if job is None:
            raise NotFound(f"no evaluation has id {job_id!r}", target="id")
        return Job(job.row, job.result)

    def all(self) -> list[Job]:
        """Every evaluation kept, oldest first."""
        return [Job(job.row, job.result) for job in self.runner.list(EVALUATIONS)]

    def delete(self, job_id: str) -> None:
        if not self.runner.cancel(EVALUATIONS, job_id):
            raise NotFound(f"no evaluation has id {job_id!r}", target="id")


def get_jobs(runner: JobRunnerDep) -> Jobs:
    return Jobs(runner)


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
