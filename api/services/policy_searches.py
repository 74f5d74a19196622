"""Policy searches: a grid of VW configurations replayed over the log, as background jobs,
and the promotion of a candidate to a policy version (and an A/B arm).

A search's grid and budget are validated at once (a bad value is a `SearchError` naming it),
then it runs in a thread; its state lives in the shared `jobs` table, as evaluations' does
(`api.services.evaluations`). Promoting needs the process that ran the search: it holds the
candidates' results.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Literal

from api.errors import BadRequest, Conflict, NotFound
from api.jobstore import AnyOf, JobRow, LocalRuns, Tracker
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
from api.services import experiments as experiment_ops
from api.services import policies as policy_ops
from api.services.process import Services
from experiments.lifecycle import ArmSpec, ExperimentNotFound
from rewards import search
from rewards.evaluation import EvaluationCancelled

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
