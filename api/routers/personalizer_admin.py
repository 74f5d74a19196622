"""Personalizer's administration surface (v1.0 and 2022-09-01-preview paths).

Service configuration and policy live in the database (`bandit.surface_config`, the policy
registry and the surface's default policy), so every api worker and the learner apply them.
Model import and reset replace the surface model's snapshots and bump its generation, so the
learner rebuilds from the new model without learning any example twice (ADR 0001).
Evaluations and feature importances are background jobs, like `/v1/evaluations`: analysis runs
over the surface's learned decisions, run by the process that accepted them, their state in the
shared `jobs` table (`api/jobstore.py`) so every api process answers for them.
"""

from __future__ import annotations

import math
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool

from api.deps import IntegratorAdminDep, ServicesDep
from api.errors import ApiError, BadRequest, NotFound
from api.jobstore import AnyOf, JobIdTaken, JobRow, JobStore, LocalRuns, Tracker
from api.schemas import (
    ApprenticeModeBatch,
    ApprenticeModeMetrics,
    DateRange,
    EvaluationContent,
    EvaluationContract,
    FeatureImportanceContract,
    FeatureImportanceList,
    FeatureImportancePublic,
    FeatureScore,
    Instant,
    LogsProperties,
    ModelProperties,
    NoNul,
    PersonalizerEvaluation,
    PersonalizerEvaluationList,
    PolicyContract,
    PolicyReferenceContract,
    PolicyResult,
    PolicyResultPoint,
    PolicyResultSummary,
    PolicyResultTimeseries,
    ServiceConfigurationPublic,
    ServiceConfigurationUpdate,
)
from api.services import PERSONALIZER, Services
from bandit.events import utcnow
from bandit.model import Model, ModelError
from bandit.surface_config import (
    DEFAULT_EXPLORATION,
    ApprenticeCounts,
    ConfigError,
    SurfaceConfig,
    format_duration,
    parse_duration,
    replace_model,
)
from policies.registry import validate
from policies.serving import epsilon_of, is_epsilon_greedy, with_epsilon, without_epsilon
from policies.spec import PolicySpec, PolicySpecError, vw_args
from rewards import evaluation, importance, search

v1 = APIRouter(prefix="/personalizer/v1.0", tags=["personalizer-admin"])
preview = APIRouter(prefix="/personalizer", tags=["personalizer-admin"])

POLICY_NAME = "personalizer"
"""The registry name under which policies set through this surface are versioned."""
VW_DEFAULT_EPSILON = 0.05
MAX_JOBS = 100
OPTIMIZATION_CANDIDATES = 6
"""Learning settings an evaluation with `enablePolicyOptimization` tries beside its policies."""
PathId = Annotated[str, Path(min_length=1, max_length=256), NoNul]


class InvalidConfiguration(ApiError):
    code = "InvalidServiceConfiguration"


class InvalidPolicy(ApiError):
    code = "InvalidPolicyConfiguration"


class InvalidContract(ApiError):
    code = "InvalidEvaluationContract"


class JobNotFound(ApiError):
    status = 404
    code = "EvaluationNotFound"


class JobExists(ApiError):
    status = 409
    code = "Conflict"


# --- configuration ---------------------------------------------------------------------------


def _policy_spec(services: Services) -> PolicySpec:
    return services.registry.get(services.default_policy(PERSONALIZER).name)


def _exploration(spec: PolicySpec, config: SurfaceConfig) -> float:
    """The share the surface spreads uniformly (what Personalizer calls the percentage):
    epsilon for an epsilon-greedy policy, the floor of any other VW explorer."""
    if spec.kind == "random":
        return 1.0
    if spec.kind != "vw":
        return 0.0
    if config.exploration is not None:
        return config.exploration
    if not is_epsilon_greedy(spec.args):
        return DEFAULT_EXPLORATION
    own = epsilon_of(spec.args)
    return VW_DEFAULT_EPSILON if own is None else own


def _effective_args(spec: PolicySpec, config: SurfaceConfig) -> str:
    if spec.kind == "vw" and is_epsilon_greedy(spec.args) and config.exploration is not None:
        return with_epsilon(spec.args, config.exploration)
    return spec.args


def _metrics(services: Services) -> ApprenticeModeMetrics | None:
    metrics = services.surface_configs.apprentice(PERSONALIZER)
    if metrics is None:
        return None

    def counts(c: ApprenticeCounts) -> dict[str, Any]:
        return {
            "numberOfEvents": c.events,
            "sumOfRewards": c.rewards,
            "numberOfImitatedEvents": c.imitated_events,
            "sumOfImitatedRewards": c.imitated_rewards,
        }

    return ApprenticeModeMetrics.model_validate(
        {
            **counts(metrics.total),
            "startTime": metrics.start,
            "lastProcessedEventTime": metrics.last_event_at,
            "lastBatchMetrics": ApprenticeModeBatch.model_validate(counts(metrics.last_batch)),
        }
    )


def _config_public(services: Services, config: SurfaceConfig) -> ServiceConfigurationPublic:
    return ServiceConfigurationPublic.model_validate(
        {
            "rewardWaitTime": format_duration(config.reward_wait),
            "defaultReward": config.default_reward,
            "rewardAggregation": config.reward_aggregation,
            "explorationPercentage": _exploration(_policy_spec(services), config),
            "modelExportFrequency": format_duration(config.model_export_frequency),
            "logRetentionDays": config.log_retention_days,
            "logMirrorEnabled": config.log_mirror_enabled,
            "logMirrorSasUri": config.log_mirror_sas_uri,
            "learningMode": config.learning_mode,
            "isAutoOptimizationEnabled": config.auto_optimization_enabled,
            "autoOptimizationFrequency": format_duration(config.auto_optimization_frequency),
            "autoOptimizationStartDate": config.auto_optimization_start,
            "modelRetrainDays": config.model_retrain_days,
            "lastConfigurationEditDate": config.edited_at,
            "latestApprenticeModeMetrics": _metrics(services),
        }
    )


def get_service_configuration(
    services: ServicesDep, admin: IntegratorAdminDep
) -> ServiceConfigurationPublic:
    """The service configuration, with the apprentice-mode metrics once apprentice mode ran."""
    return _config_public(services, services.surface_configs.read(PERSONALIZER)[0])


def update_service_configuration(
    body: ServiceConfigurationUpdate, services: ServicesDep, admin: IntegratorAdminDep
) -> ServiceConfigurationPublic:
    """Change the configuration; it takes effect in every process within a second."""
    current = services.surface_configs.read(PERSONALIZER)[0]
    spec = _policy_spec(services)
    try:
        exploration = body.exploration_percentage
        if not 0.0 <= exploration <= 1.0:
            raise ConfigError(
                f"`explorationPercentage` must be in [0, 1] (got {exploration})",
                target="explorationPercentage",
            )
        if not math.isclose(exploration, _exploration(spec, current)) and spec.kind != "vw":
            raise ConfigError(
                "`explorationPercentage` can only change for a VW policy (epsilon of "
                f"epsilon-greedy, the floor of other explorers); the policy is {spec.kind!r}",
                target="explorationPercentage",
            )
        config = replace(
            current,
            reward_wait=parse_duration(body.reward_wait_time, "rewardWaitTime"),
            default_reward=body.default_reward,
            reward_aggregation=body.reward_aggregation,  # type: ignore[arg-type]
            exploration=exploration if spec.kind == "vw" else current.exploration,
            model_export_frequency=parse_duration(
                body.model_export_frequency, "modelExportFrequency"
            ),
            log_retention_days=body.log_retention_days,
        )
        optional: dict[str, Any] = {
            "log_mirror_enabled": body.log_mirror_enabled,
            "log_mirror_sas_uri": body.log_mirror_sas_uri,
            "learning_mode": body.learning_mode,
            "auto_optimization_enabled": body.is_auto_optimization_enabled,
            "auto_optimization_start": body.auto_optimization_start_date,
            "model_retrain_days": body.model_retrain_days,
        }
        if body.auto_optimization_frequency is not None:
            optional["auto_optimization_frequency"] = parse_duration(
                body.auto_optimization_frequency, "autoOptimizationFrequency"
            )
        config = replace(config, **{k: v for k, v in optional.items() if v is not None})
        stored = services.surface_configs.put(PERSONALIZER, config)
    except ConfigError as exc:
        raise InvalidConfiguration(str(exc), target=exc.target) from None
    return _config_public(services, stored)


# --- policy ----------------------------------------------------------------------------------


def _policy_public(services: Services) -> PolicyContract:
    config = services.surface_configs.read(PERSONALIZER)[0]
    spec = _policy_spec(services)
    return PolicyContract(
        name=config.policy_name or spec.name, arguments=_effective_args(spec, config) or spec.kind
    )


def _apply_policy(services: Services, name: str, arguments: str) -> PolicyContract:
    """Serve `arguments` (through the VW allow-list) on the surface. A change of `--epsilon`
    alone keeps the model (it only changes exploration); any other change starts a new policy
    version with a fresh model."""
    current = _policy_spec(services)
    try:
        candidate = PolicySpec(
            POLICY_NAME, "vw", " ".join(arguments.split()), description=f"Personalizer {name!r}"
        )
        if current.kind == "vw" and without_epsilon(current.args) == without_epsilon(
            candidate.args
        ):
            spec = current
        else:
            validate(candidate)
            spec, _ = services.register_policy(candidate)
    except PolicySpecError as exc:
        message = str(exc).replace("`args`", "`arguments`")
        target = "arguments" if exc.target == "args" else exc.target
        raise InvalidPolicy(message, target=target) from None
    if spec.id != current.id:
        services.experiments.set_default(PERSONALIZER, spec.id)
        services.refresh_experiments()
    config = services.surface_configs.read(PERSONALIZER)[0]
    epsilon = epsilon_of(candidate.args)
    exploration = epsilon if is_epsilon_greedy(candidate.args) else None
    services.surface_configs.put(
        PERSONALIZER, replace(config, exploration=exploration, policy_name=name)
    )
    return _policy_public(services)


def get_policy(services: ServicesDep, admin: IntegratorAdminDep) -> PolicyContract:
    """The serving policy's name and its VW arguments (with the configured exploration)."""
    return _policy_public(services)


def update_policy(
    body: PolicyContract, services: ServicesDep, admin: IntegratorAdminDep
) -> PolicyContract:
    """Serve new VW `--cb_explore_adf` arguments; they are built and probed first."""
    return _apply_policy(services, body.name, body.arguments)


def reset_policy(services: ServicesDep, admin: IntegratorAdminDep) -> PolicyContract:
    """Back to the configured default policy and its own exploration."""
    default = services.registry.get(services.settings.personalizer_policy)
    services.experiments.set_default(PERSONALIZER, default.id)
    services.refresh_experiments()
    config = services.surface_configs.read(PERSONALIZER)[0]
    services.surface_configs.put(PERSONALIZER, replace(config, exploration=None, policy_name=None))
    return _policy_public(services)


# --- model -----------------------------------------------------------------------------------

_PROBE_CONTEXT: list[dict[str, Any]] = [{"probe": {"x": 1}}]
_PROBE_LINES = ("|a y:1", "|a z:1")


def _model_key(services: Services) -> tuple[str, str]:
    """The serving model's key and VW arguments; 404 when the policy learns no model."""
    policy = services.default_policy(PERSONALIZER)
    args = services.registry.args_for(policy.model_key)
    if args is None:
        raise NotFound(
            f"the policy {policy.name!r} learns no model (it is not a VW policy)", target="model"
        )
    return policy.model_key, args


def _install(services: Services, key: str, args: str, data: bytes) -> None:
    paused = services.learner.paused() if services.learner is not None else None
    replace_model(
        services.store,
        services.hub,
        services.surface_configs,
        PERSONALIZER,
        key,
        args,
        data,
        paused=paused,
    )


def export_model(
    services: ServicesDep, admin: IntegratorAdminDep, signed: bool = False
) -> Response:
    """The serving VW model (VW's binary format with `--save_resume` state).

    `signed` is accepted for compatibility; oO does not sign models.
    """
    key, _ = _model_key(services)
    model = services.hub.get(key)
    if model is None:
        raise NotFound("the serving model could not be loaded", target="model")
    data, _ = model.serialize()
    return Response(content=data, media_type="application/octet-stream")


def _check_model(args: str, data: bytes) -> None:
    if not data:
        raise BadRequest("the body must hold the VW model bytes", target="body")
    try:
        model = Model(args, data=data)
    except ModelError as exc:
        raise BadRequest(f"`body`: {exc}", target="body") from None
    try:
        pmf = model.predict(_PROBE_CONTEXT, _PROBE_LINES)
        if len(pmf) != len(_PROBE_LINES):
            raise ValueError(f"it predicted {len(pmf)} probabilities for 2 actions")
    except Exception as exc:  # a model of another reduction predicts a scalar or fails
        raise BadRequest(
            f"`body`: the model is not a --cb_explore_adf model: {exc}", target="body"
        ) from None
    finally:
        model.close()


async def import_model(
    request: Request, services: ServicesDep, admin: IntegratorAdminDep
) -> Response:
    """Replace the serving model with VW model bytes (`application/octet-stream`)."""
    data = await request.body()

    def work() -> None:
        key, args = _model_key(services)
        _check_model(args, data)
        _install(services, key, args, data)

    await run_in_threadpool(work)
    return Response(status_code=204)


def reset_model(services: ServicesDep, admin: IntegratorAdminDep) -> Response:
    """Start the serving model over: a fresh model with the policy's arguments."""
    key, args = _model_key(services)
    fresh = Model(args)
    try:
        data, _ = fresh.serialize()
    finally:
        fresh.close()
    _install(services, key, args, data)
    return Response(status_code=204)


def get_model_properties(services: ServicesDep, admin: IntegratorAdminDep) -> ModelProperties:
    """When the serving model was created (or last imported or reset) and last modified."""
    key, _ = _model_key(services)
    lineage = services.surface_configs.lineage(PERSONALIZER)
    times = services.store.snapshot_times(key)
    created = lineage.created_at
    if lineage.generation == 0 and times is not None:
        created = min(created, times[0])
    modified = max(created, times[1]) if times is not None else created
    return ModelProperties(creation_time=created, last_modified_time=modified)


# --- logs ------------------------------------------------------------------------------------


def get_log_properties(services: ServicesDep, admin: IntegratorAdminDep) -> LogsProperties:
    """The time span of the surface's logged decisions (both null when there are none)."""
    span = services.store.date_range(PERSONALIZER)
    return LogsProperties(
        date_range=DateRange.model_validate(
            {"from": span[0] if span else None, "to": span[1] if span else None}
        )
    )


def delete_logs(services: ServicesDep, admin: IntegratorAdminDep) -> Response:
    """Delete the surface's decisions and rewards; the models keep what they learned.

    Models are snapshotted first; decisions a model would still need to be rebuilt (learned
    after its newest snapshot, possible when the learner runs in another process and has not
    published yet) are kept until the next delete.
    """
    store = services.store
    if services.learner is not None:
        services.learner.publish_snapshots(force=True)
    keep_after = store.needed_marks(
        PERSONALIZER, lambda key: services.registry.args_for(key) is not None
    )
    store.delete_logs(PERSONALIZER, keep_after)
    return Response(status_code=204)


# --- jobs: evaluations and feature importances ---------------------------------------------

JobKind = Literal["evaluation", "importance"]
Status = Literal["Running", "Succeeded", "Failed", "Canceled"]


@dataclass
class Job:
    kind: JobKind
    id: str
    name: str
    start: datetime
    end: datetime
    created_at: datetime
    cancel: threading.Event = field(default_factory=threading.Event)
    status: Status = "Running"
    description: str | None = None
    evaluation: PersonalizerEvaluation | None = None
    importance: FeatureImportancePublic | None = None
    policies: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Target name -> (policy name as the client knows it, its arguments)."""
    thread: threading.Thread | None = None


_TABLE_KIND: dict[JobKind, str] = {
    "evaluation": "personalizer-evaluation",
    "importance": "personalizer-importance",
}
_STATUS: dict[str, Status] = {
    "queued": "Running",
    "running": "Running",
    "succeeded": "Succeeded",
    "failed": "Failed",
    "cancelled": "Canceled",
}


def _job_of(kind: JobKind, row: JobRow) -> Job:
    """A job as the shared table holds it (any api process may have run it)."""
    request = row.request
    job = Job(
        kind,
        row.id,
        request["name"],
        datetime.fromisoformat(request["start"]),
        datetime.fromisoformat(request["end"]),
        row.created_at,
        status=_STATUS[row.status],
        description=row.error,
        policies={k: (v[0], v[1]) for k, v in request.get("policies", {}).items()},
    )
    if row.result is not None and kind == "evaluation":
        job.evaluation = PersonalizerEvaluation.model_validate(row.result)
    elif row.result is not None:
        job.importance = FeatureImportancePublic.model_validate(row.result)
    return job


class Jobs:
    """Evaluations and feature importances: state in the shared `jobs` table, threads of the
    ones this process runs."""

    def __init__(self, store: JobStore) -> None:
        self.store = store
        self._runs = LocalRuns()

    def add(self, job: Job, services: Services, work: Callable[[Job], None]) -> Job:
        kind = _TABLE_KIND[job.kind]
        request = {
            "name": job.name,
            "start": job.start.isoformat(),
            "end": job.end.isoformat(),
            "policies": {k: list(v) for k, v in job.policies.items()},
        }
        try:
            self.store.create(kind, request, keep=MAX_JOBS, job_id=job.id)
        except JobIdTaken:
            raise JobExists(
                f"`id` {job.id!r} is already used by another {job.kind}", target="id"
            ) from None
        tracker = Tracker(self.store, kind, job.id, job.cancel)

        def outcome() -> dict[str, Any]:
            done = job.evaluation if job.evaluation is not None else job.importance
            assert done is not None, "a succeeded job sets its result"
            return done.model_dump(mode="json", by_alias=True)

        def run() -> None:
            try:
                work(job)
                job.status = "Succeeded"
                tracker.finish("succeeded", result=outcome)
            except evaluation.EvaluationCancelled:
                job.status = "Canceled"
                tracker.finish("cancelled")
            except Exception as exc:  # reported on the job; the server keeps serving
                job.description = f"{type(exc).__name__}: {exc}"
                job.status = "Failed"
                tracker.finish("failed", error=job.description)
            finally:
                self._runs.done((job.kind, job.id))

        job.thread = threading.Thread(target=run, name=f"{job.kind}-{job.id}", daemon=True)
        tracker.start()
        self._runs.start((job.kind, job.id), job.cancel, job.thread)
        return job

    def get(self, kind: JobKind, job_id: str) -> Job:
        row = self.store.get(_TABLE_KIND[kind], job_id)
        if row is None:
            what = "evaluation" if kind == "evaluation" else "feature importance"
            raise JobNotFound(f"no {what} has id {job_id!r}", target="id")
        return _job_of(kind, row)

    def all(self, kind: JobKind) -> list[Job]:
        return [_job_of(kind, row) for row in self.store.all(_TABLE_KIND[kind])]

    def delete(self, kind: JobKind, job_id: str) -> None:
        if not self.store.request_cancel(_TABLE_KIND[kind], job_id):
            what = "evaluation" if kind == "evaluation" else "feature importance"
            raise JobNotFound(f"no {what} has id {job_id!r}", target="id")
        self._runs.stop((kind, job_id))
        self.store.delete(_TABLE_KIND[kind], job_id)


_JOBS_LOCK = threading.Lock()


def get_jobs(request: Request, services: ServicesDep) -> Jobs:
    with _JOBS_LOCK:
        jobs: Jobs | None = getattr(request.app.state, "personalizer_jobs", None)
        if jobs is None:
            jobs = Jobs(services.jobs)
            request.app.state.personalizer_jobs = jobs
        return jobs


JobsDep = Annotated[Jobs, Depends(get_jobs)]


def _window(begin: datetime, finish: datetime, error: type[ApiError]) -> tuple[datetime, datetime]:
    """`startTime` and `endTime`, already in UTC (`api.schemas.Instant`), in order."""
    if begin >= finish:
        raise error(
            f"`startTime` ({begin.isoformat()}) must be before `endTime`", target="startTime"
        )
    return begin, finish


def _summary(result: evaluation.PolicyResult) -> dict[str, Any]:
    ips = result.estimate("ips")

    def finite(x: float) -> float | None:
        return x if math.isfinite(x) else None

    return {
        "expectedReward": finite(ips.value),
        "confidenceInterval": [finite(ips.gaussian.low), finite(ips.gaussian.high)],
    }


def _start_evaluation(
    services: Services, jobs: Jobs, evaluation_id: str, body: EvaluationContract
) -> Job:
    start, end = _window(body.start_time, body.end_time, InvalidContract)
    spec = _policy_spec(services)
    config = services.surface_configs.read(PERSONALIZER)[0]
    online_name = config.policy_name or spec.name
    policies: dict[str, tuple[str, str]] = {
        evaluation.ONLINE: (online_name, _effective_args(spec, config)),
        evaluation.BASELINE: ("Baseline", ""),
        evaluation.RANDOM: ("Random", ""),
    }
    sources = {
        evaluation.ONLINE: "Online",
        evaluation.BASELINE: "Baseline",
        evaluation.RANDOM: "Random",
    }
    targets: list[evaluation.Target] = [
        evaluation.Online(),
        evaluation.Baseline(),
        evaluation.Uniform(),
    ]
    try:
        for i, policy in enumerate(body.policies):
            field = f"policies[{i}].arguments"
            try:
                arguments = vw_args(" ".join(policy.arguments.split()), field)
            except PolicySpecError as exc:
                raise InvalidContract(str(exc), target=field) from None
            name = f"custom-{i}"
            try:
                targets.append(evaluation.Replay(name, arguments))
            except evaluation.EvaluationError as exc:
                raise InvalidContract(
                    f"`{field}`: {str(exc).removeprefix('`policies`: ')}", target=field
                ) from None
            policies[name] = (policy.name, arguments)
        if body.enable_policy_optimization or body.enable_offline_experimentation:
            # A few learning settings from the policy-search grid, in its seeded order.
            for candidate in search.Grid().candidates(seed=0)[:OPTIMIZATION_CANDIDATES]:
                name = f"optimization-{candidate.index}"
                targets.append(evaluation.Replay(name, candidate.args))
                policies[name] = (f"optimized-{candidate.index}", candidate.args)
                sources[name] = "OfflineExperimentation"
    except BaseException:
        for target in targets:
            target.close()
        raise
    job = Job("evaluation", evaluation_id, body.name, start, end, utcnow(), policies=policies)

    def work(job: Job) -> None:
        # `evaluate` closes the targets whatever happens.
        result = evaluation.evaluate(
            services.store,
            targets,
            surface=PERSONALIZER,
            start=start,
            end=end,
            cancel=AnyOf(job.cancel, services.stop_event),
        )
        values = []
        for p in result.policies:
            name, arguments = job.policies[p.name]
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
                            data=[PolicyResultPoint.model_validate({**summary, "timeStamp": end})]
                        ),
                    }
                )
            )
        best = result.recommended
        job.evaluation = _evaluation_public(job).model_copy(
            update={
                "optimal_policy": job.policies[best[0]][0] if best else online_name,
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

    try:
        return jobs.add(job, services, work)
    except JobExists:
        for target in targets:
            target.close()
        raise


def _evaluation_public(job: Job) -> PersonalizerEvaluation:
    base = PersonalizerEvaluation.model_validate(
        {
            "id": job.id,
            "name": job.name,
            "description": job.description,
            "startTime": job.start,
            "endTime": job.end,
            "creationTime": job.created_at,
            "status": job.status,
            "evaluationType": "Manual",
        }
    )
    if job.evaluation is None:
        return base
    return job.evaluation.model_copy(update={"status": job.status, "description": job.description})


def _page(
    request: Request, items: list[Any], top: int | None, skip: int
) -> tuple[list[Any], str | None]:
    end = len(items) if top is None else skip + top
    page = items[skip:end]
    next_link = None
    if end < len(items):
        next_link = str(request.url.include_query_params(skip=end, top=top))
    return page, next_link


_FILTER = re.compile(r"^\s*evaluationType\s+eq\s+'(?P<type>\w+)'\s*$", re.IGNORECASE)

Top = Annotated[int | None, Query(ge=1, le=1000)]
Skip = Annotated[int, Query(ge=0)]


def create_evaluation_preview(
    evaluation_id: PathId,
    body: EvaluationContract,
    services: ServicesDep,
    jobs: JobsDep,
    admin: IntegratorAdminDep,
) -> Response:
    """Submit an offline evaluation under the client's id; poll it with GET."""
    _start_evaluation(services, jobs, evaluation_id, body)
    return Response(status_code=200)


def create_evaluation_v1(
    body: EvaluationContract,
    request: Request,
    services: ServicesDep,
    jobs: JobsDep,
    admin: IntegratorAdminDep,
    response: Response,
) -> PersonalizerEvaluation:
    """Submit an offline evaluation; `Location` names it."""
    job = _start_evaluation(services, jobs, uuid.uuid4().hex, body)
    response.headers["Location"] = str(
        request.url_for("personalizer_get_evaluation_v1", evaluation_id=job.id)
    )
    return _evaluation_public(job)


def get_evaluation(
    evaluation_id: str,
    jobs: JobsDep,
    admin: IntegratorAdminDep,
    start_time: Annotated[Instant | None, Query(alias="startTime")] = None,
    end_time: Annotated[Instant | None, Query(alias="endTime")] = None,
    interval_in_minutes: Annotated[int | None, Query(alias="intervalInMinutes", ge=1)] = None,
    window: Annotated[Literal["Expanding", "Rolling"] | None, Query()] = None,
) -> PersonalizerEvaluation:
    """The evaluation's status and, once it succeeded, its policy results.

    The results cover the evaluation's own window, as one cumulative point; `startTime`,
    `endTime`, `intervalInMinutes` and `window` are checked but do not re-aggregate it.
    """
    if start_time is not None and end_time is not None:
        _window(start_time, end_time, BadRequest)
    return _evaluation_public(jobs.get("evaluation", evaluation_id))


def list_evaluations(
    request: Request,
    jobs: JobsDep,
    admin: IntegratorAdminDep,
    filter: Annotated[str | None, Query(max_length=256)] = None,
    top: Top = None,
    skip: Skip = 0,
) -> PersonalizerEvaluationList:
    """The evaluations of this process, oldest first; `filter` understands
    `evaluationType eq 'Manual'`."""
    items = [_evaluation_public(job) for job in jobs.all("evaluation")]
    if filter:
        match = _FILTER.match(filter)
        if match is None:
            raise BadRequest(
                "`filter` supports only evaluationType eq 'Manual' or 'Auto'", target="filter"
            )
        items = [e for e in items if e.evaluation_type.lower() == match["type"].lower()]
    page, next_link = _page(request, items, top, skip)
    return PersonalizerEvaluationList(value=page, next_link=next_link)


def delete_evaluation(evaluation_id: str, jobs: JobsDep, admin: IntegratorAdminDep) -> Response:
    """Cancel (between batches) and forget an evaluation."""
    jobs.delete("evaluation", evaluation_id)
    return Response(status_code=204)


def apply_from_evaluation(
    body: PolicyReferenceContract, services: ServicesDep, jobs: JobsDep, admin: IntegratorAdminDep
) -> Response:
    """Serve the arguments of one of an evaluation's policies."""
    job = jobs.get("evaluation", body.evaluation_id)
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
            _apply_policy(services, name, arguments)
            return Response(status_code=204)
    known = ", ".join(repr(n) for n, _ in job.policies.values())
    raise BadRequest(
        f"`policyName` {body.policy_name!r} is not in the evaluation (known: {known})",
        target="policyName",
    )


def _importance_public(job: Job) -> FeatureImportancePublic:
    if job.importance is not None:
        return job.importance.model_copy(
            update={"status": job.status, "description": job.description}
        )
    return FeatureImportancePublic.model_validate(
        {
            "id": job.id,
            "name": job.name,
            "description": job.description,
            "startTime": job.start,
            "endTime": job.end,
            "creationTime": job.created_at,
            "status": job.status,
        }
    )


def create_feature_importance(
    feature_importance_id: PathId,
    body: FeatureImportanceContract,
    services: ServicesDep,
    jobs: JobsDep,
    admin: IntegratorAdminDep,
) -> Response:
    """Score every context and action namespace by leave-one-namespace-out evaluation of the
    serving policy's arguments over the window."""
    start, end = _window(body.start_time, body.end_time, BadRequest)
    spec = _policy_spec(services)
    if spec.kind != "vw":
        raise BadRequest(
            f"the serving policy {spec.name!r} is not a VW policy: it uses no features",
            target="policy",
        )
    args = _effective_args(spec, services.surface_configs.read(PERSONALIZER)[0])
    job = Job("importance", feature_importance_id, body.name, start, end, utcnow())

    def work(job: Job) -> None:
        result = importance.from_store(
            services.store,
            args,
            surface=PERSONALIZER,
            start=start,
            end=end,
            cancel=AnyOf(job.cancel, services.stop_event),
        )
        scores = [
            FeatureScore(namespace=s.namespace, feature_name=s.kind, score=s.score)
            for s in result.scores
        ]
        job.importance = _importance_public(job).model_copy(update={"feature_scores": scores})

    jobs.add(job, services, work)
    return Response(status_code=200)


def get_feature_importance(
    feature_importance_id: str, jobs: JobsDep, admin: IntegratorAdminDep
) -> FeatureImportancePublic:
    """Status and, once succeeded, one score per namespace (0-100, descending); `featureName`
    says whether the namespace is a context or an action feature group."""
    return _importance_public(jobs.get("importance", feature_importance_id))


def list_feature_importances(
    request: Request, jobs: JobsDep, admin: IntegratorAdminDep, top: Top = None, skip: Skip = 0
) -> FeatureImportanceList:
    items = [_importance_public(job) for job in jobs.all("importance")]
    page, next_link = _page(request, items, top, skip)
    return FeatureImportanceList(value=page, next_link=next_link)


def delete_feature_importance(
    feature_importance_id: str, jobs: JobsDep, admin: IntegratorAdminDep
) -> Response:
    jobs.delete("importance", feature_importance_id)
    return Response(status_code=204)


# --- routes ----------------------------------------------------------------------------------

_SHARED: list[tuple[str, Callable[..., Any], str, int, Any, str]] = [
    (
        "/configurations/service",
        get_service_configuration,
        "GET",
        200,
        ServiceConfigurationPublic,
        "get_service_configuration",
    ),
    (
        "/configurations/service",
        update_service_configuration,
        "PUT",
        200,
        ServiceConfigurationPublic,
        "update_service_configuration",
    ),
    ("/configurations/policy", get_policy, "GET", 200, PolicyContract, "get_policy"),
    ("/configurations/policy", update_policy, "PUT", 200, PolicyContract, "update_policy"),
    ("/configurations/policy", reset_policy, "DELETE", 200, PolicyContract, "reset_policy"),
    ("/model", export_model, "GET", 200, None, "export_model"),
    ("/model", import_model, "PUT", 204, None, "import_model"),
    ("/model", reset_model, "DELETE", 204, None, "reset_model"),
    (
        "/model/properties",
        get_model_properties,
        "GET",
        200,
        ModelProperties,
        "get_model_properties",
    ),
    ("/logs/properties", get_log_properties, "GET", 200, LogsProperties, "get_log_properties"),
    ("/logs", delete_logs, "DELETE", 204, None, "delete_logs"),
    ("/evaluations", list_evaluations, "GET", 200, PersonalizerEvaluationList, "list_evaluations"),
    (
        "/evaluations/{evaluation_id}",
        get_evaluation,
        "GET",
        200,
        PersonalizerEvaluation,
        "get_evaluation",
    ),
    ("/evaluations/{evaluation_id}", delete_evaluation, "DELETE", 204, None, "delete_evaluation"),
]

_PREVIEW_ONLY: list[tuple[str, Callable[..., Any], str, int, Any, str]] = [
    (
        "/configurations/applyFromEvaluation",
        apply_from_evaluation,
        "POST",
        204,
        None,
        "apply_from_evaluation",
    ),
    (
        "/evaluations/{evaluation_id}",
        create_evaluation_preview,
        "PUT",
        200,
        None,
        "create_evaluation",
    ),
    (
        "/featureImportances",
        list_feature_importances,
        "GET",
        200,
        FeatureImportanceList,
        "list_feature_importances",
    ),
    (
        "/featureImportances/{feature_importance_id}",
        create_feature_importance,
        "PUT",
        200,
        None,
        "create_feature_importance",
    ),
    (
        "/featureImportances/{feature_importance_id}",
        get_feature_importance,
        "GET",
        200,
        FeatureImportancePublic,
        "get_feature_importance",
    ),
    (
        "/featureImportances/{feature_importance_id}",
        delete_feature_importance,
        "DELETE",
        204,
        None,
        "delete_feature_importance",
    ),
]

_V1_ONLY: list[tuple[str, Callable[..., Any], str, int, Any, str]] = [
    (
        "/evaluations",
        create_evaluation_v1,
        "POST",
        201,
        PersonalizerEvaluation,
        "create_evaluation",
    ),
]


def _add(
    router: APIRouter,
    version: str,
    routes: list[tuple[str, Callable[..., Any], str, int, Any, str]],
) -> None:
    for path, endpoint, method, status, model, name in routes:
        extra: dict[str, Any] = {}
        if model is None and status == 200 and path == "/model":
            extra["response_class"] = Response
            extra["responses"] = {200: {"content": {"application/octet-stream": {}}}}
        elif model is None:
            extra["response_class"] = Response
        if endpoint is import_model:
            extra["openapi_extra"] = {
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/octet-stream": {
                            "schema": {"type": "string", "format": "binary"}
                        }
                    },
                }
            }
        router.add_api_route(
            path,
            endpoint,
            methods=[method],
            status_code=status,
            response_model=model,
            operation_id=f"personalizer_{name}_{version}",
            name=f"personalizer_{name}_{version}",
            **extra,
        )


_add(v1, "v1", [*_SHARED, *_V1_ONLY])
_add(preview, "preview", [*_SHARED, *_PREVIEW_ONLY])
