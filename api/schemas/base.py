"""The types every wire schema shares: times (`Instant`), text PostgreSQL can hold (`NoNul`),
event ids, surface names and the `Strict` body that refuses unknown fields."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import Response
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints
from pydantic_core import PydanticCustomError

from api.errors import OUT_OF_RANGE
from bandit.clock import OutOfRange, as_utc


def _no_nul(value: str) -> str:
    # PostgreSQL's text type cannot hold NUL: refuse it here rather than fail the insert.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character (\\u0000)")
    return value


NoNul = AfterValidator(_no_nul)


EventId = Annotated[str, StringConstraints(min_length=1, max_length=256), NoNul]


SurfaceName = Literal["tips", "personalizer", "timing"]
"""The registered surfaces (`api.services.surfaces.SURFACES`) as the wire spells them: a
literal, so the OpenAPI document lists them; a test holds the two equal."""


def _in_utc(moment: datetime) -> datetime:
    try:
        return as_utc(moment, "time")
    except OutOfRange as exc:
        # The field is named by its location (`start`, `startTime`): see api.errors.
        raise PydanticCustomError(OUT_OF_RANGE, "{reason}", {"reason": exc.reason}) from None


Instant = Annotated[datetime, AfterValidator(_in_utc)]
"""A time on the wire, as every query parameter and body field that carries one takes it: any
offset in (none means UTC), UTC out; an instant with no UTC spelling is a 400 naming the field."""


class Strict(BaseModel):
    """Unknown fields are refused; NaN and infinities are refused."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """`model` as FastAPI sends a route's `response_model`, without validating it again.

    For a route that builds its answer as that model (validated once, when built): FastAPI
    would validate it a second time, on a worker thread for a plain `def` route, before writing
    the same JSON (by alias, nothing excluded). Keep `response_model=` on the route for OpenAPI.
    """
    return Response(
        model.model_dump_json(by_alias=True), status_code=status_code, media_type="application/json"
    )
