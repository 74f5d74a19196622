"""The decision log, exported for analysts: decisions with their rewards as VW DSJSON or
Parquet."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import AnalystDep, ServicesDep
from api.errors import BadRequest
from api.schemas.base import Instant, SurfaceName
from rewards.logs.dsjson_export import export_lines
from rewards.logs.parquet import MEDIA_TYPE as PARQUET
from rewards.logs.parquet import parquet_chunks

router = APIRouter(prefix="/v1/logs", tags=["logs"])

NDJSON = "application/x-ndjson"


@router.get(
    "/export",
    response_class=StreamingResponse,
    responses={
        200: {
            "content": {NDJSON: {}, PARQUET: {}},
            "description": "One DSJSON decision per line, or a Parquet file (`format=parquet`)",
        }
    },
)
def export(
    services: ServicesDep,
    analyst: AnalystDep,
    format: Annotated[
        Literal["dsjson", "parquet"],
        Query(description="VW DSJSON lines, or Parquet (columns: rewards.parquet)"),
    ] = "dsjson",
    start: Annotated[
        Instant | None, Query(description="Decisions created at or after (UTC when no offset)")
    ] = None,
    end: Annotated[
        Instant | None, Query(description="Decisions created before (UTC when no offset)")
    ] = None,
    surface: Annotated[SurfaceName | None, Query(description="Only this surface")] = None,
) -> StreamingResponse:
    """Stream settled decisions of [start, end) as DSJSON or Parquet, oldest first.

    Learned decisions carry the learned reward; deferred decisions never activated carry
    `_skipLearn`; decisions still inside their reward window are left out. Needs the analyst
    role (in local single-user mode, the machine's owner holds every role).
    """
    if start is not None and end is not None and start >= end:
        raise BadRequest(f"`start` ({start.isoformat()}) must be before `end`", target="start")
    if format == "parquet":
        return StreamingResponse(
            parquet_chunks(services.store, start=start, end=end, surface=surface),
            media_type=PARQUET,
            headers={"Content-Disposition": 'attachment; filename="decisions.parquet"'},
        )
    lines = export_lines(services.store, start=start, end=end, surface=surface)
    return StreamingResponse(lines, media_type=NDJSON)
