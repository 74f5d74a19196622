"""Personalizer's offline evaluations and feature importances, as background jobs.

Both run on the shared job runner (`api.job_runner`) over the surface's learned decisions, so
every api process answers for them; the request (name, window, type) and the outcome (the
evaluation run with its reward-over-time buckets, the policies by target name, the optimal
policy) are what the jobs table keeps. `GET /evaluations/{id}` renders the outcome over the
range, interval and window it asks for (`api.personalizer.results`).

Policy optimization is a policy search (`rewards.ope.search`, as `oo search-policies` runs it)
over the default grid, in an order seeded by the evaluation's id, within the budget of
`OO_PERSONALIZER_SEARCH_CANDIDATES` and `OO_PERSONALIZER_SEARCH_SECONDS`. An `Auto` evaluation
(`api.personalizer.schedule`) then serves the search's winner, the candidate whose lower
confidence bound beats the online policy's, or keeps the online policy.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Literal

from api.errors import ApiError, BadRequest
from api.evaluation_wire import evaluation_of, stored_evaluation
from api.job_runner import JobContext, JobIdTaken, JobKind, JobRunner
from api.jobstore import JobRow
from api.personalizer.errors import InvalidContract, JobExists, JobNotFound
from api.personalizer.results import Source, WindowName, bucket_seconds, content
from api.personalizer.schemas import (
    EvaluationContract,
    FeatureImportanceContract,
    FeatureImportancePublic,
    FeatureScore,
    PersonalizerEvaluation,
    PolicyReferenceContract,
)
from api.personalizer.service import Personalizer
from api.services.surfaces import PERSONALIZER
from bandit.events import utcnow
from policies.spec import PolicySpecError, vw_args
from rewards.ope import importance, search
from rewards.ope.errors import EvaluationCancelled, EvaluationError
from rewards.ope.grid import Budget, Grid
from rewards.ope.logged import Log
from rewards.ope.results import Evaluation
from rewards.ope.runs import evaluate_log
from rewards.ope.targets import BASELINE, ONLINE, RANDOM, Baseline, Online, Replay, Target, Uniform

MAX_JOBS = 100

Status = Literal[
    "Running", "Succeeded", "Failed", "Canceled", "OptimalPolicyApplied", "OnlinePolicyRetained"
]
EvaluationType = Literal["Manual", "Auto"]
_STATUS: dict[str, Status] = {
    "queued": "Running",
    "running": "Running",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "cancelled": "Canceled",
}
_FILTER = re.compile(r"^\s*evaluationType\s+eq\s+'(?P<type>\w+)'\s*$", re.IGNORECASE)


def _wire(result: FeatureImportancePublic) -> dict[str, Any]:
    return result.model_dump(mode="json", by_alias=True)


@dataclass(frozen=True)
class Outcome:
    """What a finished evaluation keeps: the run, its policies by target name (the name the
    client knows, the arguments), their sources, the optimal policy and, for an `Auto` one,
    whether it was applied."""

    run: Evaluation
    policies: dict[str, tuple[str, str]]
    sources: dict[str, Source]
    optimal_policy: str
    status: Status | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "run": stored_evaluation(self.run),
            "policies": {k: list(v) for k, v in self.policies.items()},
            "sources": self.sources,
            "optimalPolicy": self.optimal_policy,
            "status": self.status,
        }


EVALUATIONS = JobKind[Outcome](
    "personalizer-evaluation",
    keep=MAX_JOBS,
    to_json=Outcome.as_json,
    cancelled=(EvaluationCancelled,),
)
IMPORTANCES = JobKind[FeatureImportancePublic](
    "personalizer-importance",
    keep=MAX_JOBS,
    to_json=_wire,
    cancelled=(EvaluationCancelled,),
)


@dataclass(frozen=True)
class Job:
    """A Personalizer job as the shared table holds it (any api process may have run it)."""

    id: str
    name: str
    start: datetime
    end: datetime
    created_at: datetime
    status: Status = "Running"
    description: str | None = None
    result: dict[str, Any] | None = None
    policies: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Target name -> (policy name as the client knows it, its arguments)."""
    evaluation_type: EvaluationType = "Manual"

    @classmethod
    def of(cls, row: JobRow) -> Job:
        request = row.request
        result = row.result
        status = _STATUS[row.status]
        policies = request.get("policies", {})
        if result is not None and "run" in result:
            policies = result["policies"]
            status = result["status"] or status
        return cls(
            row.id,
            request["name"],
            datetime.fromisoformat(request["start"]),
            datetime.fromisoformat(request["end"]),
            row.created_at,
            status=status,
            description=row.error,
            result=result,
            policies={k: (v[0], v[1]) for k, v in policies.items()},
            evaluation_type=request.get("type", "Manual"),
        )

    def evaluation(
        self,
        start: datetime | None = None,
        end: datetime | None = None,
        interval_minutes: int | None = None,
        window: WindowName | None = None,
    ) -> PersonalizerEvaluation:
        """The evaluation as the wire shows it; once finished, its results over [start, end)
        (its own window by default), a point every `interval_minutes` (`results.content`)."""
        header = {**self._header(), "evaluationType": self.evaluation_type}
        result = self.result
        if result is None:
            return PersonalizerEvaluation.model_validate(header)
        if "run" not in result:  # stored before results were re-aggregated on read
            return PersonalizerEvaluation.model_validate(result).model_copy(
                update={"status": self.status, "description": self.description}
            )
        shown = content(
            evaluation_of(result["run"]),
            self.policies,
            result["sources"],
            evaluated=(self.start, self.end),
            start=start,
            end=end,
            interval_minutes=interval_minutes,
            window=window,
        )
        return PersonalizerEvaluation.model_validate(
            {**header, "optimalPolicy": result["optimalPolicy"], "content": shown}
        )

    def importance(self) -> FeatureImportancePublic:
        if self.result is not None:
            return FeatureImportancePublic.model_validate(self.result).model_copy(
                update={"status": self.status, "description": self.description}
            )
        return FeatureImportancePublic.model_validate(self._header())

    def _header(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "startTime": self.start,
            "endTime": self.end,
            "creationTime": self.created_at,
            "status": self.status,
        }


def window(begin: datetime, finish: datetime, error: type[ApiError]) -> tuple[datetime, datetime]:
    """`startTime` and `endTime`, already in UTC (`api.schemas.base.Instant`), in order."""
    if begin >= finish:
        raise error(
            f"`startTime` ({begin.isoformat()}) must be before `endTime`", target="startTime"
        )
    return begin, finish


class PersonalizerJobs:
    """Evaluations and feature importances of the Personalizer surface."""

    def __init__(self, personalizer: Personalizer, runner: JobRunner) -> None:
        self.personalizer = personalizer
        self.runner = runner

    def _submit(
        self,
        kind: JobKind[Any],
        job_id: str,
        request: dict[str, Any],
        work: Callable[[JobContext], Any],
        what: str,
    ) -> Job:
        try:
            row = self.runner.submit(kind, request, work, job_id=job_id)
        except JobIdTaken:
            raise JobExists(
                f"`id` {job_id!r} is already used by another {what}", target="id"
            ) from None
        return Job.of(row)

    def _get(self, kind: JobKind[Any], job_id: str, what: str) -> Job:
        job = self.runner.get(kind, job_id)
        if job is None:
            raise JobNotFound(f"no {what} has id {job_id!r}", target="id")
        return Job.of(job.row)

    def _delete(self, kind: JobKind[Any], job_id: str, what: str) -> None:
        if not self.runner.cancel(kind, job_id):
            raise JobNotFound(f"no {what} has id {job_id!r}", target="id")

    # --- evaluations ---------------------------------------------------------------------------

    def create_evaluation(
        self,
        evaluation_id: str,
        body: EvaluationContract,
        *,
        evaluation_type: EvaluationType = "Manual",
    ) -> Job:
        """Evaluate the online policy, the baseline, random and the contract's policies over its
        window; with policy optimization, also search the grid within the budget. An `Auto`
        evaluation then serves the search's winner, if it has one."""
        start, end = window(body.start_time, body.end_time, InvalidContract)
        online_name, online_args = self.personalizer.online_policy()
        policies: dict[str, tuple[str, str]] = {
            ONLINE: (online_name, online_args),
            BASELINE: ("Baseline", ""),
            RANDOM: ("Random", ""),
        }
        sources: dict[str, Source] = {ONLINE: "Online", BASELINE: "Baseline", RANDOM: "Random"}
        targets: list[Target] = [Online(), Baseline(), Uniform()]
        try:
            for i, policy in enumerate(body.policies):
                name = f"custom-{i}"
                policies[name] = (policy.name, self._replay(targets, name, i, policy.arguments))
                sources[name] = "Custom"
        except BaseException:
            for target in targets:
                target.close()
            raise
        optimize = body.enable_policy_optimization or body.enable_offline_experimentation
        settings = self.personalizer.services.settings
        budget = Budget(
            settings.personalizer_search_candidates, settings.personalizer_search_seconds
        )
        seed = zlib.crc32(evaluation_id.encode())
        store = self.personalizer.services.store
        bucket = bucket_seconds(start, end)
        personalizer = self.personalizer

        def work(job: JobContext) -> Outcome:
            log = Log.of_store(store, surface=PERSONALIZER, start=start, end=end)
            # `evaluate_log` closes the targets whatever happens.
            run = evaluate_log(log, targets, cancel=job.cancel, bucket_seconds=bucket)
            found = None
            if optimize:
                found = search.search(
                    log, Grid(), budget=budget, seed=seed, cancel=job.cancel, bucket_seconds=bucket
                )
                tried = [t for t in found.trials if t.result is not None]
                for t in tried:
                    policies[t.candidate.name] = (
                        f"optimized-{t.candidate.index}",
                        t.candidate.args,
                    )
                    sources[t.candidate.name] = "OfflineExperimentation"
                run = replace(run, policies=(*run.policies, *(t.result for t in tried if t.result)))
            # Baseline and Random are references, not learning settings: the optimal policy is
            # one that can be applied, and an `Auto` evaluation names exactly what it applied.
            applicable = [name for name in run.recommended if name not in (BASELINE, RANDOM)]
            optimal = policies[applicable[0]][0] if applicable else online_name
            status: Status | None = None
            if evaluation_type == "Auto":
                winner = found.winner if found is not None else None
                if winner is None:
                    optimal, status = online_name, "OnlinePolicyRetained"
                else:
                    optimal, arguments = policies[winner.candidate.name]
                    personalizer.apply_policy(optimal, arguments)
                    status = "OptimalPolicyApplied"
            return Outcome(run, dict(policies), dict(sources), optimal, status)

        request = {
            "name": body.name,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "policies": {k: list(v) for k, v in policies.items()},
            "type": evaluation_type,
            "optimize": optimize,
        }
        try:
            return self._submit(EVALUATIONS, evaluation_id, request, work, "evaluation")
        except JobExists:
            for target in targets:
                target.close()
            raise

    @staticmethod
    def _replay(targets: list[Target], name: str, i: int, text: str) -> str:
        """Add a replay of the contract's `policies[i].arguments`; the gated arguments."""
        where = f"policies[{i}].arguments"
        try:
            arguments = vw_args(" ".join(text.split()), where)
        except PolicySpecError as exc:
            raise InvalidContract(str(exc), target=where) from None
        try:
            targets.append(Replay(name, arguments))
        except EvaluationError as exc:
            raise InvalidContract(
                f"`{where}`: {str(exc).removeprefix('`policies`: ')}", target=where
            ) from None
        return arguments

    def evaluation(self, evaluation_id: str) -> Job:
        return self._get(EVALUATIONS, evaluation_id, "evaluation")

    def evaluations(self, filter: str | None) -> list[PersonalizerEvaluation]:
        """Every evaluation kept, oldest first; `filter` understands
        `evaluationType eq 'Manual'` (or `'Auto'`)."""
        wanted = None
        if filter:
            match = _FILTER.match(filter)
            if match is None or match["type"].lower() not in ("manual", "auto"):
                raise BadRequest(
                    "`filter` supports only evaluationType eq 'Manual' or 'Auto'", target="filter"
                )
            wanted = match["type"].lower()
        jobs = [Job.of(job.row) for job in self.runner.list(EVALUATIONS)]
        return [
            job.evaluation()
            for job in jobs
            if wanted is None or job.evaluation_type.lower() == wanted
        ]

    def delete_evaluation(self, evaluation_id: str) -> None:
        self._delete(EVALUATIONS, evaluation_id, "evaluation")

    def apply_from_evaluation(self, body: PolicyReferenceContract) -> None:
        """Serve the arguments of one of an evaluation's policies."""
        job = self.evaluation(body.evaluation_id)
        if job.status not in ("Succeeded", "OptimalPolicyApplied", "OnlinePolicyRetained"):
            raise BadRequest(
                f"`evaluationId` {job.id!r} has not succeeded (status {job.status})",
                target="evaluationId",
            )
        for name, arguments in job.policies.values():
            if name == body.policy_name:
                if not arguments:
                    raise BadRequest(
                        f"`policyName` {name!r} is not a VW policy and cannot serve",
                        target="policyName",
                    )
                self.personalizer.apply_policy(name, arguments)
                return
        known = ", ".join(repr(n) for n, _ in job.policies.values())
        raise BadRequest(
            f"`policyName` {body.policy_name!r} is not in the evaluation (known: {known})",
            target="policyName",
        )

    # --- feature importances -------------------------------------------------------------------

    def create_importance(self, importance_id: str, body: FeatureImportanceContract) -> Job:
        """Score every context and action namespace by leave-one-namespace-out evaluation of
        the serving policy's arguments over the window."""
        start, end = window(body.start_time, body.end_time, BadRequest)
        personalizer = self.personalizer
        spec = personalizer.policy_spec()
        if spec.kind != "vw":
            raise BadRequest(
                f"the serving policy {spec.name!r} is not a VW policy: it uses no features",
                target="policy",
            )
        args = personalizer.effective_args(spec, personalizer.settings())
        store = personalizer.services.store
        created = utcnow()

        def work(job: JobContext) -> FeatureImportancePublic:
            result = importance.from_store(
                store, args, surface=PERSONALIZER, start=start, end=end, cancel=job.cancel
            )
            scores = [
                FeatureScore(namespace=s.namespace, feature_name=s.kind, score=s.score)
                for s in result.scores
            ]
            header = Job(importance_id, body.name, start, end, created).importance()
            return header.model_copy(update={"feature_scores": scores})

        request = {"name": body.name, "start": start.isoformat(), "end": end.isoformat()}
        return self._submit(IMPORTANCES, importance_id, request, work, "feature importance")

    def importance(self, importance_id: str) -> Job:
        return self._get(IMPORTANCES, importance_id, "feature importance")

    def importances(self) -> list[FeatureImportancePublic]:
        return [Job.of(job.row).importance() for job in self.runner.list(IMPORTANCES)]

    def delete_importance(self, importance_id: str) -> None:
        self._delete(IMPORTANCES, importance_id, "feature importance")
