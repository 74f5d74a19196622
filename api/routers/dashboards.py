"""The experimenter's pages, rendered by the server: plain HTML, inline SVG, one stylesheet.

Not part of the API contract, so excluded from the OpenAPI document. The pages need the
experimenter role; the stylesheet and icon are public.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from api.deps import ExperimenterDep, ServicesDep
from api.routers.experiments import ExperimentDep
from api.web import NOSNIFF, PAGE_HEADERS, REVALIDATE
from dashboards.experiments import ICON_SVG, experiment_page, index_page, reward_series
from experiments.results import experiment_results

router = APIRouter(prefix="/dashboards", include_in_schema=False)

STYLESHEET = Path(__file__).resolve().parents[2] / "dashboards" / "dashboard.css"


@cache
def _stylesheet() -> tuple[bytes, str]:
    body = STYLESHEET.read_bytes()
    return body, f'"{hashlib.sha256(body).hexdigest()[:16]}"'


def _html(body: str) -> HTMLResponse:
    return HTMLResponse(body, headers={**REVALIDATE, **NOSNIFF, **PAGE_HEADERS})


@router.get("/experiments", response_class=HTMLResponse)
def experiments_index(services: ServicesDep, viewer: ExperimenterDep) -> HTMLResponse:
    """Every experiment and its status."""
    return _html(index_page(services.experiments.list()))


@router.get("/experiments/{experiment_id}", response_class=HTMLResponse)
def experiment_dashboard(
    viewer: ExperimenterDep, experiment: ExperimentDep, services: ServicesDep
) -> HTMLResponse:
    """One experiment: reward over time, arms, sample ratio, guardrails."""
    store = services.store
    return _html(
        experiment_page(
            experiment, experiment_results(store, experiment), reward_series(store, experiment)
        )
    )


@router.get("/dashboard.css")
def stylesheet(request: Request) -> Response:
    body, etag = _stylesheet()
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag, **REVALIDATE})
    return Response(
        body, media_type="text/css; charset=utf-8", headers={"ETag": etag, **REVALIDATE, **NOSNIFF}
    )


@router.get("/icon.svg")
def icon() -> Response:
    return Response(ICON_SVG, media_type="image/svg+xml", headers={**REVALIDATE, **NOSNIFF})
