"""Policy searches: a grid of VW configurations replayed over the log, as background jobs.

`POST` validates the grid and budget (a bad value is a 400 naming it) and starts the search in a
thread; `GET` shows progress, then every candidate with its estimate and the winner; `DELETE`
cancels and forgets; `POST /{id}/promote` registers a candidate (the winner by default) as a
policy version and, on request, makes it an A/B arm against the online policy. Job state lives
in the shared `jobs` table, as evaluations' does (`api/routers/evaluations.py`); promoting needs
the process that ran the search.

The operations below (`start_search`, `promote`) are the function API other surfaces reuse.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Request, Response

from api.auth.principal import Principal, Role
from api.deps import AnalystDep, ServicesDep, requires
from api.errors import BadRequest, Conflict, Forbidden, NotFound
from api.jobstore import AnyOf, JobRow, LocalRuns, Tracker
from api.routers import experiments as experiment_ops
from api.routers import policies as policy_ops
from api.schemas import (
    ArmIn,
    ExperimentCreate,
    PolicyCreate,
    PolicySearchCreate,
    PolicySearchPromote,
    PolicySearchPromotion,
    PolicySearchPublic,
    PolicySearchResult,
)
from api.services.process import Services
from experiments.lifecycle import ArmSpec, ExperimentNotFound
from rewards import search
from rewards.evaluation import EvaluationCancelled

router = APIRouter(
    prefix="/v1/policy-searches",
    tags=["evaluations"],
    dependencies=[Depends(requires(Role.ANALYST))],
)

KIND = "policy-search"
MAX_JOBS = 50
"""Finished searches beyond this many are forgotten, oldest first."""

Status = Literal["running", "succeeded", "failed", "cancelled"]


def public(row: JobRow) -> PolicySearchPublic:
    detail = row.detail or {}
    return PolicySearchPublic(
        id=row.id,
        status="running" if row.status == "queued" else row.status,
        candidates_done=int(detail.get("candidates_done", 0)),
        candidates_planned=int(detail.get("candidates_planned", 0)),
        done=row.done,
        total=row.total,
        created_at=row.created_at,
        finished_at=row.finished_at,
        request=PolicySearchCreate.model_validate(row.request),
        error=row.error,
        result=None if row.result is None else PolicySearchResult.model_validate(row.result),
    )


@dataclass(frozen=True)
class SearchJob:
    """One search as the table holds it, with the result object when this process ran it
    (promoting needs it; the table keeps the JSON)."""

    row: JobRow
    result: search.SearchResult | None

    @property
    def id(self) -> str:
        return self.row.id

    @property
    def status(self) -> Status:
        return public(self.row).status

    def public(self) -> PolicySearchPublic:
        return public(self.row)


def grid_of(body: PolicySearchCreate) -> tuple[search.Grid, search.Budget]:
    """The request's grid and budget, validated; a bad value is a 400 naming its field."""
    grid = search.Grid(
        explorations=tuple(search.Exploration.parse(e) for e in body.explorations),
        interactions=tuple(tuple(pairs) for pairs in body.interactions),
        learning_rates=tuple(body.learning_rates),
        cb_types=tuple(body.cb_types),
    )
    return grid, search.Budget(body.max_candidates, body.max_seconds)


class Searches:
    """Policy searches: state in the shared table, threads of the searches this process runs."""

    def __init__(self, services: Services) -> None:
        self.store = services.jobs
        self._runs = LocalRuns()
        self._results: OrderedDict[str, search.SearchResult] = OrderedDict()
        self._lock = threading.Lock()

    def start(self, services: Services, body: PolicySearchCreate) -> SearchJob:
        """Validate `body`, read the window's summary, and search in a background thread."""
        grid, budget = grid_of(body)
        start, end = body.start, body.end
        log = search.Log.of_store(
            services.store, surface=body.surface, model_key=body.model_key, start=start, end=end
        )
        row = self.store.create(KIND, body.model_dump(mode="json"), keep=MAX_JOBS)
        cancel = threading.Event()
        tracker = Tracker(self.store, KIND, row.id, cancel)

        def progress(now: search.Progress) -> None:
            detail = {
                "candidates_done": now.candidates_done,
                "candidates_planned": now.candidates_planned,
            }
            tracker.report(now.events_done, now.events_total, detail)

        def work() -> None:
            try:
                result = search.search(
                    log,
                    grid,
                    budget=budget,
                    seed=body.seed,
                    estimator=body.estimator,
                    reward_model_name=body.reward_model,
                    on_progress=progress,
                    cancel=AnyOf(cancel, services.stop_event),
                )
                with self._lock:
                    self._results[row.id] = result
                    while len(self._results) > MAX_JOBS:
                        self._results.popitem(last=False)
                tracker.finish("succeeded", result=result.as_json)
            except EvaluationCancelled:
                tracker.finish("cancelled")
            except Exception as exc:  # reported on the job; the server keeps serving
                tracker.finish("failed", error=f"{type(exc).__name__}: {exc}")
            finally:
                self._runs.done(row.id)

        thread = threading.Thread(target=work, name=f"policy-search-{row.id}", daemon=True)
        tracker.start()
        self._runs.start(row.id, cancel, thread)
        return SearchJob(row, None)

    def _job(self, row: JobRow) -> SearchJob:
        with self._lock:
            result = self._results.get(row.id) if row.status == "succeeded" else None
        return SearchJob(row, result)

    def get(self, job_id: str) -> SearchJob:
        row = self.store.get(KIND, job_id)
        if row is None:
            raise NotFound(f"no policy search has id {job_id!r}", target="id")
        return self._job(row)

    def all(self) -> list[SearchJob]:
        return [self._job(row) for row in self.store.all(KIND)]

    def delete(self, job_id: str) -> None:
        if not self.store.request_cancel(KIND, job_id):
            raise NotFound(f"no policy search has id {job_id!r}", target="id")
        self._runs.stop(job_id)
        self.store.delete(KIND, job_id)
        with self._lock:
            self._results.pop(job_id, None)


_LOCK = threading.Lock()


def get_searches(request: Request, services: ServicesDep) -> Searches:
    """The app's searches, made on first use (kept on `app.state`)."""
    with _LOCK:
        searches: Searches | None = getattr(request.app.state, "policy_searches", None)
        if searches is None:
            searches = Searches(services)
            request.app.state.policy_searches = searches
        return searches


SearchesDep = Annotated[Searches, Depends(get_searches)]


def promote(
    services: Services, result: search.SearchResult, body: PolicySearchPromote, *, label: str
) -> PolicySearchPromotion:
    """Register a candidate of `result` (the winner by default) as a policy version; optionally
    make it an arm against the surface's online policy.

    The arm joins `body.experiment.name` when that is a draft on the search's surface. Started
    experiments keep their arms (see `experiments.lifecycle`), so for one of those — or when no
    name is given — a new draft experiment is created: control = the online policy, treatment =
    the new version. `label` names the search in the policy's description.
    """
    if body.candidate is not None:
        trial = result.trial(body.candidate)
    else:
        winner = result.winner
        if winner is None:
            raise Conflict(
                "no candidate beats the online policy by the auto-optimize rule; name a "
                "`candidate` to promote one anyway",
                target="candidate",
            )
        trial = winner
    if trial.result is None:
        raise BadRequest(
            f"`candidate` {trial.candidate.index} has no result ({trial.error})", target="candidate"
        )
    est = trial.result.estimate(result.estimator)
    description = body.description or (
        f"From policy search {label}: {result.estimator} {est.value:.4f} "
        f"[{est.gaussian.low:.4f}, {est.gaussian.high:.4f}] over {result.n} decisions."
    )
    spec, created = policy_ops.register(
        services,
        PolicyCreate(name=body.name, kind="vw", args=trial.candidate.args, description=description),
    )
    note = f"registered {spec.id}" if created else f"{spec.id} already had these arguments"
    if body.experiment is None:
        return PolicySearchPromotion(
            policy=policy_ops.public(spec),
            policy_created=created,
            experiment=None,
            experiment_created=False,
            note=note,
        )
    surface = result.surface
    if surface is None:
        raise BadRequest(
            "`experiment` needs a search over one surface; this one has none", target="experiment"
        )
    wanted = body.experiment
    arm = ArmSpec(wanted.arm or spec.name, spec.id, wanted.weight)
    existing = None
    if wanted.name is not None:
        try:
            existing = services.experiments.get(wanted.name)
        except ExperimentNotFound:
            existing = None
    if existing is not None and existing.surface != surface:
        raise BadRequest(
            f"`experiment.name` {existing.name!r} runs on {existing.surface!r}, the search on "
            f"{surface!r}",
            target="experiment.name",
        )
    if existing is not None and existing.status == "draft":
        updated = services.experiments.update_arms(existing.name, [*existing.arms, arm])
        return PolicySearchPromotion(
            policy=policy_ops.public(spec),
            policy_created=created,
            experiment=experiment_ops.public(updated),
            experiment_created=False,
            note=f"{note}; added arm {arm.name!r} to draft {existing.name!r}",
        )
    online = services.default_policy(surface).name
    name = (
        wanted.name
        if wanted.name is not None and existing is None
        else f"{spec.name}-v{spec.version}-vs-online"[:64]
    )
    if existing is not None:
        note += (
            f"; experiment {existing.name!r} is {existing.status} and its arms cannot change, "
            f"so draft {name!r} was created"
        )
    else:
        note += f"; created draft {name!r}"
    draft = experiment_ops.create(
        services.experiments,
        ExperimentCreate(
            name=name,
            surface=surface,
            description=f"{online} (online) vs {spec.id} from policy search {label}",
            arms=[
                ArmIn(name="online", policy=online, weight=wanted.weight),
                ArmIn(name=arm.name, policy=arm.policy, weight=arm.weight),
            ],
        ),
    )
    return PolicySearchPromotion(
        policy=policy_ops.public(spec),
        policy_created=created,
        experiment=experiment_ops.public(draft),
        experiment_created=True,
        note=note,
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
    if job.result is None:
        raise Conflict(
            f"policy search {search_id!r} ran on another api process (or before a restart), "
            "which holds its candidates' models; promote it there, or register the candidate's "
            "`args` with POST /v1/policies",
            target="id",
        )
    if body.experiment is not None and not _experimenter(analyst):
        raise Forbidden("`experiment` needs the `experimenter` role")
    return promote(services, job.result, body, label=search_id)


def _experimenter(principal: Principal) -> bool:
    return principal.has(Role.EXPERIMENTER)
