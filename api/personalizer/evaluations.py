"""Personalizer's offline evaluation and feature-importance routes.

Thin: each calls `api.personalizer.jobs.PersonalizerJobs`. `shared` serves both path styles;
v1.0 creates an evaluation with `POST /evaluations` (`v1_only`), the preview with
`PUT /evaluations/{id}` and has feature importances and `applyFromEvaluation` (`preview_only`).
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import Path, Query, Request, Response

from api.deps import IntegratorAdminDep
from api.errors import BadRequest
from api.personalizer.deps import PersonalizerJobsDep
from api.personalizer.jobs import window as in_order
from api.personalizer.routing import PathStyles
from api.personalizer.schemas import (
    EvaluationContract,
    FeatureImportanceContract,
    FeatureImportanceList,
    FeatureImportancePublic,
    PersonalizerEvaluation,
    PersonalizerEvaluationList,
    PolicyReferenceContract,
)
from api.schemas.base import Instant, NoNul

shared = PathStyles(tags=["personalizer-admin"])
v1_only = PathStyles(styles=["v1"], tags=["personalizer-admin"])
preview_only = PathStyles(styles=["preview"], tags=["personalizer-admin"])

PathId = Annotated[str, Path(min_length=1, max_length=256), NoNul]
Top = Annotated[int | None, Query(ge=1, le=1000)]
Skip = Annotated[int, Query(ge=0)]


def _page(
    request: Request, items: list[Any], top: int | None, skip: int
) -> tuple[list[Any], str | None]:
    end = len(items) if top is None else skip + top
    page = items[skip:end]
    next_link = None
    if end < len(items):
        next_link = str(request.url.include_query_params(skip=end, top=top))
    return page, next_link


# --- both path styles --------------------------------------------------------------------------


@shared.get("/evaluations", response_model=PersonalizerEvaluationList)
def list_evaluations(
    request: Request,
    jobs: PersonalizerJobsDep,
    admin: IntegratorAdminDep,
    filter: Annotated[str | None, Query(max_length=256)] = None,
    top: Top = None,
    skip: Skip = 0,
) -> PersonalizerEvaluationList:
    """Every evaluation kept (of any api process), oldest first; `filter` understands
    `evaluationType eq 'Manual'` and `evaluationType eq 'Auto'`."""
    page, next_link = _page(request, jobs.evaluations(filter), top, skip)
    return PersonalizerEvaluationList(value=page, next_link=next_link)


@shared.get("/evaluations/{evaluation_id}", response_model=PersonalizerEvaluation)
def get_evaluation(
    evaluation_id: str,
    jobs: PersonalizerJobsDep,
    admin: IntegratorAdminDep,
    start_time: Annotated[Instant | None, Query(alias="startTime")] = None,
    end_time: Annotated[Instant | None, Query(alias="endTime")] = None,
    interval_in_minutes: Annotated[int | None, Query(alias="intervalInMinutes", ge=1)] = None,
    window: Annotated[Literal["Expanding", "Rolling"] | None, Query()] = None,
) -> PersonalizerEvaluation:
    """The evaluation's status and, once it succeeded, each policy's summary and time series
    over [`startTime`, `endTime`) (the evaluation's window by default): a point every
    `intervalInMinutes` (a multiple of the evaluation's bucket; its bucket, 5 minutes over
    windows up to ten days, by default),
    `Expanding` from `startTime` (the default) or `Rolling` (each interval alone)."""
    if start_time is not None and end_time is not None:
        in_order(start_time, end_time, BadRequest)
    return jobs.evaluation(evaluation_id).evaluation(
        start_time, end_time, interval_in_minutes, window
    )


@shared.delete("/evaluations/{evaluation_id}", status_code=204, response_class=Response)
def delete_evaluation(
    evaluation_id: str, jobs: PersonalizerJobsDep, admin: IntegratorAdminDep
) -> Response:
    """Cancel (between batches) and forget an evaluation."""
    jobs.delete_evaluation(evaluation_id)
    return Response(status_code=204)


# --- v1.0 --------------------------------------------------------------------------------------


@v1_only.post(
    "/evaluations",
    name="create_evaluation",
    status_code=201,
    response_model=PersonalizerEvaluation,
)
def create_evaluation_v1(
    body: EvaluationContract,
    request: Request,
    jobs: PersonalizerJobsDep,
    admin: IntegratorAdminDep,
    response: Response,
) -> PersonalizerEvaluation:
    """Submit an offline evaluation; `Location` names it."""
    job = jobs.create_evaluation(uuid.uuid4().hex, body)
    response.headers["Location"] = str(
        request.url_for("personalizer_get_evaluation_v1", evaluation_id=job.id)
    )
    return job.evaluation()


# --- 2022-09-01-preview ------------------------------------------------------------------------


@preview_only.post("/configurations/applyFromEvaluation", status_code=204, response_class=Response)
def apply_from_evaluation(
    body: PolicyReferenceContract, jobs: PersonalizerJobsDep, admin: IntegratorAdminDep
) -> Response:
    """Serve the arguments of one of an evaluation's policies."""
    jobs.apply_from_evaluation(body)
    return Response(status_code=204)


@preview_only.put("/evaluations/{evaluation_id}", name="create_evaluation", response_class=Response)
def create_evaluation_preview(
    evaluation_id: PathId,
    body: EvaluationContract,
    jobs: PersonalizerJobsDep,
    admin: IntegratorAdminDep,
) -> Response:
    """Submit an offline evaluation under the client's id; poll it with GET."""
    jobs.create_evaluation(evaluation_id, body)
    return Response(status_code=200)


@preview_only.get("/featureImportances", response_model=FeatureImportanceList)
def list_feature_importances(
    request: Request,
    jobs: PersonalizerJobsDep,
    admin: IntegratorAdminDep,
    top: Top = None,
    skip: Skip = 0,
) -> FeatureImportanceList:
    page, next_link = _page(request, jobs.importances(), top, skip)
    return FeatureImportanceList(value=page, next_link=next_link)


@preview_only.put("/featureImportances/{feature_importance_id}", response_class=Response)
def create_feature_importance(
    feature_importance_id: PathId,
    body: FeatureImportanceContract,
    jobs: PersonalizerJobsDep,
    admin: IntegratorAdminDep,
) -> Response:
    """Score every context and action namespace by leave-one-namespace-out evaluation of the
    serving policy's arguments over the window."""
    jobs.create_importance(feature_importance_id, body)
    return Response(status_code=200)


@preview_only.get(
    "/featureImportances/{feature_importance_id}", response_model=FeatureImportancePublic
)
def get_feature_importance(
    feature_importance_id: str, jobs: PersonalizerJobsDep, admin: IntegratorAdminDep
) -> FeatureImportancePublic:
    """Status and, once succeeded, one score per namespace (0-100, descending); `featureName`
    says whether the namespace is a context or an action feature group."""
    return jobs.importance(feature_importance_id).importance()


@preview_only.delete(
    "/featureImportances/{feature_importance_id}", status_code=204, response_class=Response
)
def delete_feature_importance(
    feature_importance_id: str, jobs: PersonalizerJobsDep, admin: IntegratorAdminDep
) -> Response:
    jobs.delete_importance(feature_importance_id)
    return Response(status_code=204)
