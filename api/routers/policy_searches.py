"""Policy searches: a grid of VW configurations replayed over the log, as background jobs.

`POST` validates the grid and budget (a bad value is a 400 naming it) and starts the search in a
thread; `GET` shows progress, then every candidate with its estimate and the winner; `DELETE`
cancels and forgets; `POST /{id}/promote` registers a candidate (the winner by default) as a
policy version and, on request, makes it an A/B arm against the online policy, from any api
process. The searches and promotion are `api.services.policy_searches`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Response

from api.auth.principal import Principal, Role
from api.deps import AnalystDep, SearchesDep, ServicesDep, requires
from api.errors import Conflict, Forbidden
from api.schemas.policy_searches import (
    PolicySearchCreate,
    PolicySearchPromote,
    PolicySearchPromotion,
    PolicySearchPublic,
)
from api.services.policy_searches import promote

router = APIRouter(
    prefix="/v1/policy-searches",
    tags=["evaluations"],
    dependencies=[Depends(requires(Role.ANALYST))],
)


@router.post("", response_model=PolicySearchPublic, status_code=201)
def create_policy_search(
    body: PolicySearchCreate, services: ServicesDep, searches: SearchesDep
) -> PolicySearchPublic:
    """Start a search over the learned decisions of [start, end) on `surface`.

    Poll `GET /v1/policy-searches/{id}` for progress and the result.
    """
    return searches.start(services, body).public()


@router.get("", response_model=list[PolicySearchPublic])
def list_policy_searches(searches: SearchesDep) -> list[PolicySearchPublic]:
    """Every search kept (of any api process), oldest first."""
    return [job.public() for job in searches.all()]


@router.get("/{search_id}", response_model=PolicySearchPublic)
def read_policy_search(search_id: str, searches: SearchesDep) -> PolicySearchPublic:
    """Status, progress and, once succeeded, every candidate tried and the winner."""
    return searches.get(search_id).public()


@router.delete("/{search_id}", status_code=204, response_class=Response)
def delete_policy_search(search_id: str, searches: SearchesDep) -> Response:
    """Cancel a running search (between batches) and forget it."""
    searches.delete(search_id)
    return Response(status_code=204)


@router.post("/{search_id}/promote", response_model=PolicySearchPromotion)
def promote_policy_search(
    search_id: str,
    body: PolicySearchPromote,
    services: ServicesDep,
    searches: SearchesDep,
    analyst: AnalystDep,
) -> PolicySearchPromotion:
    """Register the winner (or `candidate`) as a policy version; with `experiment`, also an arm
    against the online policy (an experimenter's right)."""
    job = searches.get(search_id)
    if job.status != "succeeded":
        raise Conflict(
            f"policy search {search_id!r} is {job.status}; only a finished one can be promoted",
            target="id",
        )
    if job.result is None:  # a succeeded search always stored its result
        raise Conflict(f"policy search {search_id!r} kept no result", target="id")
    if body.experiment is not None and not _experimenter(analyst):
        raise Forbidden("`experiment` needs the `experimenter` role")
    return promote(services, job.result, body, label=search_id)


def _experimenter(principal: Principal) -> bool:
    return principal.has(Role.EXPERIMENTER)
