"""Policy searches: a grid of VW configurations replayed over the log, as background jobs,
and the promotion of a candidate to a policy version (and an A/B arm).

A search's grid and budget are validated at once (a bad value is a `SearchError` naming it),
then it runs on the process's job runner (`api/job_runner.py`), in a thread; its state lives in
the shared `jobs` table, as evaluations' does (`api.services.evaluations`). Any api process
promotes a finished search: the candidates' results are rebuilt from the table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from api.errors import BadRequest, Conflict, NotFound
from api.evaluation_wire import search_of, stored_search
from api.job_runner import JobContext, JobKind, JobRunner
from api.jobstore import JobRow
from api.schemas.experiments import ArmIn, ExperimentCreate
from api.schemas.policies import PolicyCreate
from api.schemas.policy_searches import (
    PolicySearchCreate,
    PolicySearchPromote,
    PolicySearchPromotion,
    PolicySearchPublic,
    PolicySearchResult,
)
from api.services import experiments as experiment_ops
from api.services import policies as policy_ops
from api.services.process import Services
from experiments.lifecycle import ArmSpec, ExperimentNotFound
from rewards.ope import search
from rewards.ope.errors import EvaluationCancelled
from rewards.ope.grid import Budget, Exploration, Grid
from rewards.ope.logged import Log

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
    """One search as the table holds it, with the result object once it succeeded (promoting
    needs it; rebuilt from the table by a process that did not run the search)."""

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


def grid_of(body: PolicySearchCreate) -> tuple[Grid, Budget]:
    """The request's grid and budget, validated; a bad value is a 400 naming its field."""
    grid = Grid(
        explorations=tuple(Exploration.parse(e) for e in body.explorations),
        interactions=tuple(tuple(pairs) for pairs in body.interactions),
        learning_rates=tuple(body.learning_rates),
        cb_types=tuple(body.cb_types),
    )
    return grid, Budget(body.max_candidates, body.max_seconds)


SEARCHES = JobKind[search.SearchResult](
    KIND,
    keep=MAX_JOBS,
    to_json=stored_search,
    cancelled=(EvaluationCancelled,),
    from_json=search_of,
)


class Searches:
    """Policy searches, as the shared job runner holds them."""

    def __init__(self, runner: JobRunner) -> None:
        self.runner = runner

    def start(self, services: Services, body: PolicySearchCreate) -> SearchJob:
        """Validate `body`, read the window's summary, and search in a background thread."""
        grid, budget = grid_of(body)
        start, end = body.start, body.end
        log = Log.of_store(
            services.store, surface=body.surface, model_key=body.model_key, start=start, end=end
        )

        def work(job: JobContext) -> search.SearchResult:
            def progress(now: search.Progress) -> None:
                detail = {
                    "candidates_done": now.candidates_done,
                    "candidates_planned": now.candidates_planned,
                }
                job.report(now.events_done, now.events_total, detail)

            return search.search(
                log,
                grid,
                budget=budget,
                seed=body.seed,
                estimator=body.estimator,
                reward_model_name=body.reward_model,
                on_progress=progress,
                cancel=job.cancel,
            )

        row = self.runner.submit(SEARCHES, body.model_dump(mode="json"), work)
        return SearchJob(row, None)

    def get(self, job_id: str) -> SearchJob:
        job = self.runner.get(SEARCHES, job_id)
        if job is None:
            raise NotFound(f"no policy search has id {job_id!r}", target="id")
        return SearchJob(job.row, job.result)

    def all(self) -> list[SearchJob]:
        return [SearchJob(job.row, job.result) for job in self.runner.list(SEARCHES)]

    def delete(self, job_id: str) -> None:
        if not self.runner.cancel(SEARCHES, job_id):
            raise NotFound(f"no policy search has id {job_id!r}", target="id")


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
