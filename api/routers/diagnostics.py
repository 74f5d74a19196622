"""Is it learning? The checkup of one surface's decision log, for analysts."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import AnalystDep, ServicesDep
from api.diagnostics import MAX_SAMPLE, MIN_SAMPLE, WindowError, checkup
from api.errors import BadRequest
from api.schemas.base import Instant, SurfaceName
from bandit.events import utcnow
from rewards.doctor import DEFAULT_SAMPLE, Diagnosis

router = APIRouter(prefix="/v1/diagnostics", tags=["diagnostics"])


@router.get("", response_model=Diagnosis)
def diagnostics(
    services: ServicesDep,
    analyst: AnalystDep,
    surface: Annotated[SurfaceName, Query(description="The surface to check")],
    start: Annotated[
        Instant | None,
        Query(description="Decisions created at or after (UTC when no offset); default end - 24 h"),
    ] = None,
    end: Annotated[
        Instant | None, Query(description="Decisions created before (UTC when no offset); now")
    ] = None,
    sample: Annotated[
        int,
        Query(
            ge=MIN_SAMPLE,
            le=MAX_SAMPLE,
            description="Decisions read at most for the exploration share, the estimates and "
            "the feature checks; counts and reward shares are exact over the whole window",
        ),
    ] = DEFAULT_SAMPLE,
) -> Diagnosis:
    """Reward shares, exploration, the smallest propensity, the model's version and age, the
    online and baseline estimates, and warnings that name the namespace and feature at fault
    and what to do (docs/diagnostics.md). Needs the analyst role."""
    try:
        return checkup(
            services.store,
            services.registry,
            surface,
            start=start,
            end=end,
            now=utcnow(),
            sample=sample,
        )
    except WindowError as exc:
        raise BadRequest(str(exc), target=exc.target) from None
