"""The analyst's page, beside the experimenter's: server-rendered HTML, inline SVG, one stylesheet.

Not part of the API contract (excluded from the OpenAPI document); needs the analyst role. The
page shows a finished evaluation of any api process (`?evaluation=ID`), or evaluates the window it
is given (`?surface=…&start=…&end=…&policy=…`) while the request waits, up to
`MAX_PAGE_EVENTS` learned decisions; larger windows go through `POST /v1/evaluations` first.
Its Content-Security-Policy is the dashboards' own, except that its one form may submit to
this origin (`form-action 'self'`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse

from api.deps import AnalystDep, JobsDep, ServicesDep
from api.diagnostics import WindowError, checkup
from api.errors import BadRequest
from api.schemas.base import SurfaceName
from api.services.evaluations import Job
from api.services.policies import registered
from api.services.process import Services
from api.web import NOSNIFF, PAGE_HEADERS, REVALIDATE
from bandit.clock import as_utc
from bandit.events import utcnow
from dashboards.analysis import Choice, Form, analysis_page, window_text
from rewards.doctor import Diagnosis
from rewards.ope.results import EstimatorName, Evaluation
from rewards.ope.runs import evaluate
from rewards.ope.targets import BASELINE, RANDOM, resolve

router = APIRouter(prefix="/dashboards", include_in_schema=False)

PANEL_SAMPLE = 5_000
"""Decisions the "is it learning?" panel reads at most (its counts are exact)."""

MAX_PAGE_EVENTS = 200_000
"""Larger windows are evaluated as a job (`POST /v1/evaluations`) and picked from the list."""

HEADERS = {
    **REVALIDATE,
    **NOSNIFF,
    **PAGE_HEADERS,
    "Content-Security-Policy": PAGE_HEADERS["Content-Security-Policy"].replace(
        "form-action 'none'", "form-action 'self'"
    ),
}


def _moment(value: str, name: str) -> datetime | None:
    """A form's datetime-local value (or any ISO 8601) as UTC; empty is None."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise BadRequest(
            f"`{name}` must be ISO 8601, e.g. 2026-11-25T09:00 (got {value!r})", target=name
        ) from None
    return as_utc(moment, name)


def _choice(job: Job) -> Choice:
    result = job.result
    n = f"{result.n:,} events" if result is not None else ""
    names = ", ".join(job.request.policies) or "online only"
    when = job.created_at.astimezone(UTC).strftime("%b %d %H:%M")
    return Choice(job.id, f"{when} · {job.request.surface} · {n} · {names}")


def _policy_names(services: Services) -> list[str]:
    """Built-in baseline and random, then every registered random or VW policy version."""
    names = [BASELINE, RANDOM]
    for spec in sorted(registered(services), key=lambda s: (s.name, s.version)):
        if spec.kind in ("random", "vw") and spec.id not in names:
            names.append(spec.id)
    return names


def _learning(services: Services, form: Form) -> Diagnosis:
    """The "is it learning?" panel: the form's surface over its window, or over the last day
    when the form has none it can check (minutes equal once rounded, a start in the future)."""
    window = (_moment(form.start, "start"), _moment(form.end, "end"))
    for start, end in (window, (None, None)):
        try:
            return checkup(
                services.store,
                services.registry,
                form.surface,
                start=start,
                end=end,
                now=utcnow(),
                sample=PANEL_SAMPLE,
            )
        except WindowError:
            continue
    raise AssertionError("the last day is always a window")  # pragma: no cover


@router.get("/analysis", response_class=HTMLResponse)
def analysis_dashboard(
    analyst: AnalystDep,
    services: ServicesDep,
    jobs: JobsDep,
    evaluation_id: Annotated[str, Query(alias="evaluation", max_length=64)] = "",
    surface: SurfaceName | None = None,
    start: Annotated[str, Query(max_length=40)] = "",
    end: Annotated[str, Query(max_length=40)] = "",
    policy: Annotated[list[str] | None, Query(max_length=20)] = None,
    estimator: Literal["ips", "snips", "dr"] = "ips",
) -> HTMLResponse:
    """Policies side by side (forest plot), their overlap, and reward over time."""
    chosen: EstimatorName = estimator
    choices = [_choice(job) for job in jobs.all() if job.status == "succeeded"]
    names = _policy_names(services)
    result: Evaluation | None = None
    message = ""
    if evaluation_id:
        job = jobs.get(evaluation_id)
        if job.status != "succeeded":
            message = f"evaluation {evaluation_id} is {job.status}: reload when it has finished"
        result = job.result
        request = job.request
        form = Form(
            surface=request.surface,
            start=window_text(request.start),
            end=window_text(request.end),
            policies=tuple(request.policies),
            estimator=chosen,
            evaluation=evaluation_id,
        )
    elif surface is not None:
        since, until = _moment(start, "start"), _moment(end, "end")
        if since is not None and until is not None and since >= until:
            raise BadRequest(f"`start` ({since.isoformat()}) must be before `end`", target="start")
        wanted = tuple(policy) if policy is not None else ("baseline", "random")
        form = Form(surface, window_text(since), window_text(until), wanted, chosen)
        total = services.store.learned_summary(start=since, end=until, surface=surface)[0]
        if total > MAX_PAGE_EVENTS:
            message = (
                f"{total:,} learned decisions in this window: more than this page evaluates while "
                f"you wait ({MAX_PAGE_EVENTS:,}). Start an evaluation (POST /v1/evaluations or "
                "`oo evaluate`) and pick it above."
            )
        else:
            targets = resolve(wanted, services.registry, field="policy")
            result = evaluate(services.store, targets, surface=surface, start=since, end=until)
    else:
        form = Form(estimator=chosen)
    page = analysis_page(
        result,
        form=form,
        choices=choices,
        policies=names,
        message=message,
        learning=_learning(services, form),
    )
    return HTMLResponse(page, headers=HEADERS)
