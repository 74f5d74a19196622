"""Wire schemas: the one definition of every request and response body.

`docs/openapi.json` is generated from these; a test fails when it drifts.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import Response
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)
from pydantic_core import PydanticCustomError

from api.errors import OUT_OF_RANGE
from bandit.clock import OutOfRange, as_utc
from experiments.stats import ExperimentResults
from integrations.signals import Signal


def model_response(model: BaseModel, status_code: int = 200) -> Response:
    """`model` as FastAPI sends a route's `response_model`, without validating it again.

    For a route that builds its answer as that model (validated once, when built): FastAPI
    would validate it a second time, on a worker thread for a plain `def` route, before writing
    the same JSON (by alias, nothing excluded). Keep `response_model=` on the route for OpenAPI.
    """
    return Response(
        model.model_dump_json(by_alias=True), status_code=status_code, media_type="application/json"
    )


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


# --- the tips product ----------------------------------------------------------------------


class RecommendRequest(Strict):
    defer_activation: bool = Field(
        default=False,
        description="True when the tip may not be shown yet (prefetch); activate it when shown",
    )


class TipPublic(BaseModel):
    id: str
    kind: Literal["advice", "todo"]
    title: str
    body: str
    category: str
    effort_minutes: int


class RecommendResponse(BaseModel):
    event_id: str
    tip: TipPublic
    probability: float = Field(description="The probability with which this tip was drawn")
    policy: str
    model_version: int
    missing_sources: list[str] = Field(
        default_factory=list,
        description="Connected integrations left out of this decision (slow, failing, "
        "rate-limited or needing reconnection); the tip was chosen without them",
    )


class FeedbackRequest(Strict):
    event_id: EventId
    reaction: Literal["done", "useful", "later", "dismiss"]


class FeedbackResponse(BaseModel):
    event_id: str
    reaction: str | None
    reward: float
    duplicate: bool = Field(description="True when this event id already had a reaction")
    late: bool = Field(description="True when it came after the reward window: kept, not learned")


# The signal contract is one model, shared with the integrations that emit signals.
SignalIn = Signal


_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


class QuietHours(Strict):
    start: str = Field(description="Local time HH:MM")
    end: str = Field(description="Local time HH:MM")

    @field_validator("start", "end")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"must be a local time HH:MM (got {value!r})")
        return value


class ProfilePublic(BaseModel):
    timezone: str
    quiet_hours: QuietHours | None
    interests: list[str]
    kinds: list[Literal["advice", "todo"]]


Interest = Annotated[str, StringConstraints(min_length=1, max_length=40), NoNul]


class ProfileUpdate(Strict):
    timezone: str | None = None
    quiet_hours: QuietHours | None = None
    interests: list[Interest] | None = Field(default=None, max_length=20)
    kinds: list[Literal["advice", "todo"]] | None = Field(default=None, min_length=1)

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ZoneInfo(value)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(
                    f"`timezone` must be an IANA zone like Europe/Paris (got {value!r})"
                ) from None
        return value


class ExportSectionPublic(BaseModel):
    name: str = Field(description="The module that holds this data: profile, signals, ...")
    description: str
    data: Any = Field(description="The section's data as JSON; text is returned verbatim")


class PersonExport(BaseModel):
    principal: str
    exported_at: datetime
    sections: list[ExportSectionPublic]


# --- operations ----------------------------------------------------------------------------


class HealthCheck(BaseModel):
    status: Literal["ok", "failing"]
    detail: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded", "failing"]
    role: str
    checks: dict[str, HealthCheck]
    models: dict[str, int]


# --- policies and experiments --------------------------------------------------------------


class PolicyBase(Strict):
    name: str = Field(description="Lowercase letters, digits, '.', '_' or '-'; 1-64 characters")
    kind: Literal["random", "vw", "rule"]
    args: str = Field(
        default="",
        max_length=2000,
        description="vw: VW arguments with --cb_explore_adf; rule: the rule, e.g. most-urgent-todo",
    )
    description: str = Field(default="", max_length=500)


class PolicyCreate(PolicyBase):
    pass


class PolicyPublic(PolicyBase):
    version: int = Field(description="1 for the first registration (and built-ins), then 2, 3...")
    id: str = Field(
        description="What decisions log and model keys embed: `name` for version 1, `name@vN` after"
    )
    builtin: bool


class PolicyHistory(PolicyPublic):
    """The latest version of a policy, with every version oldest first."""

    versions: list[PolicyPublic]


class ArmIn(Strict):
    name: str
    policy: str = Field(
        description="A policy name (pinned to its latest version on create, e.g. `name@v2`) "
        "or a version id `name@vN`"
    )
    weight: int = Field(default=1, description="Relative traffic share; a positive integer")


class ExperimentBase(Strict):
    name: str = Field(description="The experiment's id: lowercase letters, digits, '.', '_', '-'")
    surface: SurfaceName
    description: str = Field(default="", max_length=500)


class ExperimentCreate(ExperimentBase):
    arms: list[ArmIn] = Field(description="The first arm is the control")
    salt: str | None = Field(default=None, description="Assignment salt; random when omitted")
    min_units_per_arm: int = Field(default=200, description="Units per arm before any verdict")
    min_decisions_per_arm: int = Field(
        default=1000, description="Decisions per arm before any verdict"
    )


class ExperimentUpdate(Strict):
    arms: list[ArmIn]


class ShipRequest(Strict):
    arm: str | None = Field(
        default=None, description="The arm to ship; by default the winner of the results"
    )


class ExperimentPublic(ExperimentBase):
    status: Literal["draft", "running", "paused", "stopped", "shipped"]
    arms: list[ArmIn]
    control: str
    salt: str
    primary_metric: Literal["mean_reward"] = "mean_reward"
    guardrails: list[str] = ["dismiss_rate", "tips_per_day"]
    min_units_per_arm: int
    min_decisions_per_arm: int
    created_at: datetime
    started_at: datetime | None
    stopped_at: datetime | None
    shipped_arm: str | None


class ArmModel(BaseModel):
    name: str
    policy: str
    model_key: str = Field(description="The model this arm learns, from its own traffic only")


class ExperimentResultsPublic(BaseModel):
    experiment: str
    status: str
    days: float = Field(description="Days since the start (to the stop), at least 1")
    arms: list[ArmModel]
    winner: str | None = Field(description="The arm `ship` picks when none is named")
    provisional: bool = Field(
        description="True while an arm is below `min_units_per_arm` or `min_decisions_per_arm`: "
        "lift, tests, intervals and guardrails are shown (each arm says whether its own are "
        "provisional) and every verdict waits for the floors"
    )
    min_units_per_arm: int
    min_decisions_per_arm: int
    results: ExperimentResults


# --- evaluations ---------------------------------------------------------------------------


class EvaluationCreate(Strict):
    surface: SurfaceName
    start: Instant | None = Field(
        default=None, description="Decisions created at or after (UTC when no offset)"
    )
    end: Instant | None = Field(
        default=None, description="Decisions created before (UTC when no offset)"
    )
    policies: list[str] = Field(
        default=["baseline", "random"],
        max_length=20,
        description="baseline, random, or registered policy names; `online` is always evaluated",
    )
    model_key: str | None = Field(
        default=None, max_length=256, description="Only decisions logged by this model"
    )
    reward_model: Literal["action-mean", "vw"] = Field(
        default="action-mean", description="DR's reward model (see rewards.ope.reward_models)"
    )


class IntervalPublic(BaseModel):
    method: str = Field(description="gaussian, cressie_read or bernstein")
    low: float | None = Field(description="None when unbounded")
    high: float | None


class EstimatePublic(BaseModel):
    estimator: Literal["ips", "snips", "dr"]
    value: float | None = Field(description="None when the policy never agreed with the log")
    intervals: list[IntervalPublic] = Field(description="Gaussian first, then the second kind")


class OverlapPublic(BaseModel):
    ess: float | None = Field(description="Kish effective sample size of the importance weights")
    ess_ratio: float | None
    min_weight: float | None
    max_weight: float | None
    mean_weight: float | None
    low_overlap_share: float | None = Field(
        description="Target mass on candidates logged with probability below the threshold"
    )
    low_overlap_threshold: float


class VerdictPublic(BaseModel):
    recommended: bool | None = Field(description="None for the online policy (the reference)")
    reason: str


class PolicyEvaluationPublic(BaseModel):
    name: str
    kind: str = Field(description="online, baseline, random or vw")
    estimates: list[EstimatePublic]
    diagnostics: OverlapPublic
    verdict: VerdictPublic


class EvaluationResult(BaseModel):
    n: int = Field(description="Learned decisions evaluated")
    surface: str | None
    model_key: str | None
    start: datetime | None
    end: datetime | None
    alpha: float
    reward_range: list[float]
    max_weight: float | None
    reward_model: str
    verdict_estimator: str
    recommended: list[str] = Field(description="Candidates that beat the online policy")
    seconds: float
    policies: list[PolicyEvaluationPublic]


class EvaluationPublic(BaseModel):
    id: str
    status: Literal["running", "succeeded", "failed", "cancelled"]
    done: int = Field(description="Events evaluated so far")
    total: int = Field(description="Events to evaluate")
    created_at: datetime
    finished_at: datetime | None
    request: EvaluationCreate
    error: str | None
    result: EvaluationResult | None


# --- policy search (issue 6) ---------------------------------------------------------------


class PolicySearchCreate(Strict):
    surface: SurfaceName
    start: Instant | None = Field(
        default=None, description="Decisions created at or after (UTC when no offset)"
    )
    end: Instant | None = Field(
        default=None, description="Decisions created before (UTC when no offset)"
    )
    model_key: str | None = Field(
        default=None, max_length=256, description="Only decisions logged by this model"
    )
    explorations: list[str] = Field(
        default=["epsilon=0.05", "epsilon=0.2", "squarecb", "softmax=10"],
        min_length=1,
        max_length=12,
        description="epsilon=P, softmax=LAMBDA, squarecb[=GAMMA_SCALE], bag=N, cover=N, regcb, "
        "regcbopt",
    )
    interactions: list[list[str]] = Field(
        default=[[], ["::"]],
        min_length=1,
        max_length=12,
        description="Each entry one set of -q namespace pairs ('::' is all); [] is none",
    )
    learning_rates: list[float | None] = Field(
        default=[None, 0.1], min_length=1, max_length=12, description="null: VW's default (0.5)"
    )
    cb_types: list[Literal["ips", "dr", "mtr", "dm"]] = Field(
        default=["mtr", "ips"], min_length=1, max_length=4
    )
    max_candidates: int | None = Field(default=16, ge=1, le=1000)
    max_seconds: float | None = Field(default=600.0, gt=0, le=86_400)
    seed: int = Field(default=0, ge=0, le=2**32 - 1, description="Fixes the order tried")
    estimator: Literal["ips", "snips", "dr"] = Field(
        default="ips", description="The estimator the winner is chosen on"
    )
    reward_model: Literal["action-mean", "vw"] = Field(
        default="action-mean", description="DR's reward model (see rewards.ope.reward_models)"
    )


class PolicySearchCandidatePublic(BaseModel):
    index: int = Field(description="Position in the seeded order the grid is tried in")
    name: str
    args: str = Field(description="The VW arguments")
    exploration: str
    interactions: list[str]
    learning_rate: float | None
    cb_type: str


class PolicySearchTrialPublic(BaseModel):
    candidate: PolicySearchCandidatePublic
    seconds: float
    error: str | None = Field(description="Why the candidate has no result (VW refused it)")
    result: PolicyEvaluationPublic | None


class PolicySearchResult(BaseModel):
    n: int = Field(description="Learned decisions replayed per candidate")
    alpha: float
    estimator: str
    reward_model: str
    grid_size: int
    seed: int
    stopped: Literal["exhausted", "max_candidates", "max_seconds"]
    seconds: float
    surface: str | None
    model_key: str | None
    start: datetime | None
    end: datetime | None
    online: PolicyEvaluationPublic | None = Field(description="The reference")
    winner: int | None = Field(
        description="Index of the best candidate the auto-optimize rule recommends"
    )
    leader: int | None = Field(description="Index of the best mean, recommended or not")
    trials: list[PolicySearchTrialPublic]


class PolicySearchPublic(BaseModel):
    id: str
    status: Literal["running", "succeeded", "failed", "cancelled"]
    candidates_done: int
    candidates_planned: int
    done: int = Field(description="Events replayed so far, over all candidates")
    total: int = Field(description="Events to replay, over all planned candidates")
    created_at: datetime
    finished_at: datetime | None
    request: PolicySearchCreate
    error: str | None
    result: PolicySearchResult | None


class PromoteExperiment(Strict):
    name: str | None = Field(
        default=None,
        max_length=64,
        description="A draft experiment to add the arm to, or the name of a new draft; "
        "default `{policy}-vN-vs-online`",
    )
    arm: str | None = Field(default=None, max_length=64, description="Default: the policy name")
    weight: int = Field(default=1, ge=1, le=1000)


class PolicySearchPromote(Strict):
    name: str = Field(max_length=64, description="The policy to register the candidate as")
    description: str = Field(default="", max_length=500)
    candidate: int | None = Field(
        default=None, ge=0, description="Default: the winner; another index promotes that one"
    )
    experiment: PromoteExperiment | None = Field(
        default=None, description="Also make it an A/B arm against the online policy"
    )


class PolicySearchPromotion(BaseModel):
    policy: PolicyPublic
    policy_created: bool = Field(description="False when that version was already registered")
    experiment: ExperimentPublic | None
    experiment_created: bool
    note: str


# --- sign-in (api/auth) ---------------------------------------------------------------------


class SignInProvider(BaseModel):
    name: str
    label: str
    login_url: str = Field(description="Open this in the browser to sign in with the provider")


class SignInProviders(BaseModel):
    local: bool = Field(description="True in local single-user mode: nobody needs to sign in")
    providers: list[SignInProvider]


class TokenRequest(Strict):
    grant_type: Literal["refresh_token", "session"] = Field(
        description="`session`: trade the web session cookie for a first token pair; "
        "`refresh_token`: rotate a refresh token"
    )
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=256), NoNul] | None = (
        None
    )


class TokenPair(BaseModel):
    access_token: str
    token_type: Literal["Bearer"] = "Bearer"
    expires_in: int = Field(description="Seconds until the access token expires")
    refresh_token: str = Field(description="Single use: each refresh returns the next one")


class TokenRevoke(Strict):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=256), NoNul]


# --- people's integrations (issue 4) -------------------------------------------------------

IntegrationProvider = Literal["todoist", "google-calendar"]


class IntegrationPublic(BaseModel):
    provider: IntegrationProvider
    status: Literal["connected", "needs_reconnect", "not_connected"] = Field(
        description="`needs_reconnect`: the provider refused the token (revoked or expired); "
        "connect again"
    )
    configured: bool = Field(description="False when this server has no OAuth client for it")
    connected_at: datetime | None = Field(description="When it was connected; null otherwise")
    changed_at: datetime | None = Field(description="When the status last changed")
    connect_url: str = Field(description="Open in the browser to connect (or reconnect)")


class IntegrationList(BaseModel):
    integrations: list[IntegrationPublic]


RoleName = Literal["person", "experimenter", "analyst", "admin"]


class ApiKeyCreate(Strict):
    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=128), NoNul
    ]
    roles: list[RoleName] = Field(
        default_factory=list, max_length=4, description="`admin` may administer the service"
    )


class ApiKeyPublic(BaseModel):
    key_id: str
    name: str
    roles: list[RoleName]
    created_at: datetime
    revoked_at: datetime | None
    last_used_at: datetime | None


class ApiKeyCreated(ApiKeyPublic):
    key: str = Field(description="`oo_<key id>_<secret>`: shown only in this answer")
