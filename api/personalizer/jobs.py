"""Personalizer's offline evaluations and feature importances, as background jobs.

Both run on the shared job runner (`api.job_runner`) over the surface's learned decisions, so
every api process answers for them; the request (name, window, the policies by target name) and
the finished wire object are what the jobs table keeps.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from api.errors import ApiError, BadRequest
from api.job_runner import JobContext, JobIdTaken, JobKind, JobRunner
from api.jobstore import JobRow
from api.personalizer.errors import InvalidContract, JobExists, JobNotFound
from api.personalizer.schemas import (
    EvaluationContent,
    EvaluationContract,
    FeatureImportanceContract,
    FeatureImportancePublic,
    FeatureScore,
    PersonalizerEvaluation,
    PolicyReferenceContract,
    PolicyResult,
    PolicyResultPoint,
    PolicyResultSummary,
    PolicyResultTimeseries,
)
from api.personalizer.service import Personalizer
from api.services.surfaces import PERSONALIZER
from bandit.events import utcnow
from policies.spec import PolicySpecError, vw_args
from rewards.ope import importance
from rewards.ope.errors import EvaluationCancelled, EvaluationError
from rewards.ope.grid import Grid
from rewards.ope.results import PolicyResult as PolicyEvaluation
from rewards.ope.runs import evaluate
from rewards.ope.targets import BASELINE, ONLINE, RANDOM, Baseline, Online, Replay, Target, Uniform

MAX_JOBS = 100
OPTIMIZATION_CANDIDATES = 6
"""Learning settings an evaluation with `enablePolicyOptimization` tries beside its policies."""

Status = Literal["Running", "Succeeded", "Failed", "Canceled"]
_STATUS: dict[str, Status] = {
    "queued": "Running",
    "running": "Running",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "cancelled": "Canceled",
}
_FILTER = re.compile(r"^\s*evaluationType\s+eq\s+'(?P<type>\w+)'\s*$", re.IGNORECASE)


def _wire(result: PersonalizerEvaluation | FeatureImportancePublic) -> dict[str, Any]:
    return result.model_dump(mode="json", by_alias=True)


EVALUATIONS = JobKind[PersonalizerEvaluation](
    "personalizer-evaluation",
    keep=MAX_JOBS,
    to_json=_wire,
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

    @classmethod
    def of(cls, row: JobRow) -> Job:
        request = row.request
        return cls(
            row.id,
            request["name"],
            datetime.fromisoformat(request["start"]),
            datetime.fromisoformat(request["end"]),
            row.created_at,
            status=_STATUS[row.status],
            description=row.error,
            result=row.result,
            policies={k: (v[0], v[1]) for k, v in request.get("policies", {}).items()},
        )

    def evaluation(self) -> PersonalizerEvaluation:
        if self.result is not None:
            return PersonalizerEvaluation.model_validate(self.result).model_copy(
                update={"status": self.status, "description": self.description}
            )
        return PersonalizerEvaluation.model_validate({**self._header(), "evaluationType": "Manual"})

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


def _summary(result: PolicyEvaluation) -> dict[str, Any]:
    ips = result.estimate("ips")

    def finite(x: float) -> float | None:
        return x if math.isfinite(x) else None

    return {
        "expectedReward": finite(ips.value),
        "confidenceInterval": [finite(ips.gaussian.low), finite(ips.gaussian.high)],
    }


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

    def create_evaluation(self, evaluation_id: str, body: EvaluationContract) -> Job:
        """Evaluate the online policy, the baseline, random and the contract's policies (and a
        few learning settings when it asks for optimization) over its window."""
        start, end = window(body.start_time, body.end_time, InvalidContract)
        online_name, online_args = self.personalizer.online_policy()
        policies: dict[str, tuple[str, str]] = {
            ONLINE: (online_name, online_args),
            BASELINE: ("Baseline", ""),
            RANDOM: ("Random", ""),
        }
        sources = {
            ONLINE: "Online",
            BASELINE: "Baseline",
            RANDOM: "Random",
        }
        targets: list[Target] = [
            Online(),
            Baseline(),
            Uniform(),
        ]
        try:
            for i, policy in enumerate(body.policies):
                name = f"custom-{i}"
                arguments = self._replay(targets, name, i, policy.arguments)
                policies[name] = (policy.name, arguments)
            if body.enable_policy_optimization or body.enable_offline_experimentation:
                # A few learning settings from the policy-search grid, in its seeded order.
                for candidate in Grid().candidates(seed=0)[:OPTIMIZATION_CANDIDATES]:
                    name = f"optimization-{candidate.index}"
                    targets.append(Replay(name, candidate.args))
                    policies[name] = (f"optimized-{candidate.index}", candidate.args)
                    sources[name] = "OfflineExperimentation"
        except BaseException:
            for target in targets:
                target.close()
            raise
        store = self.personalizer.services.store
        created = utcnow()

        def work(job: JobContext) -> PersonalizerEvaluation:
            # `evaluate` closes the targets whatever happens.
            result = evaluate(
                store, targets, surface=PERSONALIZER, start=start, end=end, cancel=job.cancel
            )
            values = []
            for p in result.policies:
                name, arguments = policies[p.name]
                summary = _summary(p)
                values.append(
                    PolicyResult.model_validate(
                        {
                            "name": name,
                            "arguments": arguments,
                            "policySource": sources.get(p.name, "Custom"),
                            "summary": PolicyResultSummary.model_validate(summary),
                            # One point for the whole window: the estimate is cumulative.
                            "timeseries": PolicyResultTimeseries(
                                data=[
                                    PolicyResultPoint.model_validate({**summary, "timeStamp": end})
                                ]
                            ),
                        }
                    )
                )
            best = result.recommended
            header = Job(evaluation_id, body.name, start, end, created).evaluation()
            return header.model_copy(
                update={
                    "optimal_policy": policies[best[0]][0] if best else online_name,
                    "content": EvaluationContent.model_validate(
                        {
                            "startTime": start,
                            "endTime": end,
                            "intervalInMinutes": max(1, int((end - start).total_seconds() // 60)),
                            "value": values,
                        }
                    ),
                }
            )

        request = {
            "name": body.name,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "policies": {k: list(v) for k, v in policies.items()},
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
        `evaluationType eq 'Manual'`."""
        items = [Job.of(job.row).evaluation() for job in self.runner.list(EVALUATIONS)]
        if filter:
            match = _FILTER.match(filter)
            if match is None:
                raise BadRequest(
                    "`filter` supports only evaluationType eq 'Manual' or 'Auto'", target="filter"
                )
            items = [e for e in items if e.evaluation_type.lower() == match["type"].lower()]
        return items

    def delete_evaluation(self, evaluation_id: str) -> None:
        self._delete(EVALUATIONS, evaluation_id, "evaluation")

    def apply_from_evaluation(self, body: PolicyReferenceContract) -> None:
        """Serve the arguments of one of an evaluation's policies."""
        job = self.evaluation(body.evaluation_id)
        if job.status != "Succeeded":
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
