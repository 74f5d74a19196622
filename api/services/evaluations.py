"""Counterfactual evaluations: the background jobs of `/v1/evaluations` (and the analysis page
that draws them).

A job is validated and its policies resolved at once (a bad name is an `EvaluationError`), then
it runs on the process's job runner (`api/job_runner.py`) in a thread of the process that
accepted it; its state lives in the shared `jobs` table, so every api process answers for it,
and a job whose process stopped reads as failed. `oo evaluate --log` reads a DSJSON file
instead, through `rewards.ope.runs.evaluate_log`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from api.errors import BadRequest, NotFound
from api.evaluation_wire import evaluation_of, stored_evaluation
from api.job_runner import JobContext, JobKind, JobRunner
from api.jobstore import JobRow
from api.schemas.evaluations import EvaluationCreate, EvaluationPublic, EvaluationResult
from api.services.process import Services
from rewards.ope.errors import EvaluationCancelled
from rewards.ope.results import Evaluation
from rewards.ope.runs import evaluate
from rewards.ope.targets import resolve

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
    """One evaluation as the table holds it, with the full result object once it succeeded
    (rebuilt from the table by a process that did not run it; the analysis page draws it)."""

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


EVALUATIONS = JobKind[Evaluation](
    KIND,
    keep=MAX_JOBS,
    to_json=stored_evaluation,
    cancelled=(EvaluationCancelled,),
    from_json=evaluation_of,
)


class Jobs:
    """Evaluation jobs, as the shared job runner holds them."""

    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner

    def start(self, services: Services, body: EvaluationCreate) -> JobRow:
        start, end = body.start, body.end
        if start is not None and end is not None and start >= end:
            raise BadRequest(f"`start` ({start.isoformat()}) must be before `end`", target="start")
        targets = resolve(body.policies, services.registry)

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
