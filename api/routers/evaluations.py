"""Counterfactual evaluations over the decision log, run as background jobs.

`POST` validates the request and resolves the policies at once (a bad name is a 400), then runs
the evaluation in a thread of the process that accepted it; `GET` shows its status and progress,
then the result; `DELETE` cancels a running one and forgets it. The jobs are
`api.services.evaluations`; their state lives in the shared `jobs` table, so every api process
answers for them.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from api.auth.principal import Role
from api.deps import JobsDep, ServicesDep, requires
from api.schemas.evaluations import EvaluationCreate, EvaluationPublic
from api.services.evaluations import public

router = APIRouter(
    prefix="/v1/evaluations",
    tags=["evaluations"],
    dependencies=[Depends(requires(Role.ANALYST))],
)


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
