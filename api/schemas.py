"""Wire schemas: the one definition of every request and response body.

`docs/openapi.json` is generated from these; a test fails when it drifts.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from bandit.features import check_features
from experiments.stats import ExperimentResults


def _no_nul(value: str) -> str:
    # PostgreSQL's text type cannot hold NUL: refuse it here rather than fail the insert.
    if "\x00" in value:
        raise ValueError("must not contain a NUL character (\\u0000)")
    return value


NoNul = AfterValidator(_no_nul)
EventId = Annotated[str, StringConstraints(min_length=1, max_length=256), NoNul]
MAX_ACTIONS = 50


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


class FeedbackRequest(Strict):
    event_id: EventId
    reaction: Literal["done", "useful", "later", "dismiss"]


class FeedbackResponse(BaseModel):
    event_id: str
    reaction: str | None
    reward: float
    duplicate: bool = Field(description="True when this event id already had a reaction")
    late: bool = Field(description="True when it came after the reward window: kept, not learned")


SignalType = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_.-]*$")
]


class SignalIn(Strict):
    type: SignalType = Field(description="mood, energy, habit_done, or a custom type")
    value: float = Field(description="mood and energy: 1 (low) to 5 (high)")
    occurred_at: datetime | None = Field(default=None, description="Defaults to now")
    source: Annotated[str, StringConstraints(min_length=1, max_length=64), NoNul] = "api"

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return value
        if value.tzinfo is None:
            raise ValueError("`occurred_at` must carry a timezone offset, e.g. 2026-11-25T09:00Z")
        try:
            value.astimezone(UTC)  # it is stored in UTC, where 9999-12-31T23:00-05:00 overflows
        except OverflowError:
            raise ValueError(
                f"`occurred_at` is out of range in UTC (got {value.isoformat()})"
            ) from None
        return value

    @model_validator(mode="after")
    def _scale(self) -> SignalIn:
        if self.type in ("mood", "energy") and not 1.0 <= self.value <= 5.0:
            raise ValueError(
                f"`value` of a {self.type} signal must be in [1, 5] (got {self.value})"
            )
        return self


class SignalAccepted(BaseModel):
    type: str
    value: float
    occurred_at: datetime


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


# --- Personalizer-compatible ---------------------------------------------------------------

FeatureObjects = list[dict[str, Any]]


class PersonalizerModel(BaseModel):
    # Personalizer ignored fields it did not know; so do we, for SDK compatibility.
    model_config = ConfigDict(extra="ignore", allow_inf_nan=False, populate_by_name=True)


class RankableAction(PersonalizerModel):
    id: EventId
    features: FeatureObjects = Field(default_factory=list)

    @field_validator("features")
    @classmethod
    def _finite(cls, value: FeatureObjects) -> FeatureObjects:
        for i, obj in enumerate(value):
            check_features(obj, f"features[{i}]")
        return value


class RankRequest(PersonalizerModel):
    context_features: FeatureObjects | None = Field(default=None, alias="contextFeatures")
    actions: list[RankableAction] = Field(min_length=1)
    excluded_actions: list[str] | None = Field(default=None, alias="excludedActions")
    event_id: EventId | None = Field(default=None, alias="eventId")
    defer_activation: bool = Field(default=False, alias="deferActivation")

    @field_validator("context_features")
    @classmethod
    def _finite(cls, value: FeatureObjects | None) -> FeatureObjects | None:
        for i, obj in enumerate(value or []):
            check_features(obj, f"contextFeatures[{i}]")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> RankRequest:
        if len(self.actions) > MAX_ACTIONS:
            raise ValueError(
                f"`actions` must hold at most {MAX_ACTIONS} actions (got {len(self.actions)})"
            )
        seen: set[str] = set()
        for i, action in enumerate(self.actions):
            if action.id in seen:
                raise ValueError(f"`actions[{i}].id` {action.id!r} is a duplicate action id")
            seen.add(action.id)
        excluded = self.excluded_actions or []
        for i, action_id in enumerate(excluded):
            if action_id not in seen:
                raise ValueError(f"`excludedActions[{i}]` {action_id!r} is not one of the actions")
        if len(set(excluded)) >= len(seen):
            raise ValueError("`excludedActions` excludes every action; at least one must remain")
        return self


class RankedAction(PersonalizerModel):
    id: str
    probability: float


class RankResponse(PersonalizerModel):
    event_id: str = Field(alias="eventId")
    reward_action_id: str = Field(alias="rewardActionId")
    ranking: list[RankedAction]


class RewardRequest(PersonalizerModel):
    # Strict: a boolean or a numeric string is a client bug, not a reward of 1.0 or 0.5.
    value: float = Field(ge=-1.0, le=1.0, strict=True)


# --- operations ----------------------------------------------------------------------------


class HealthCheck(BaseModel):
    status: Literal["ok", "failing"]
    detail: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded", "failing"]
    role: str
    checks: dict[str, HealthCheck]
    models: dict[str, int]


class BenchPredictRequest(PersonalizerModel):
    context_features: FeatureObjects | None = Field(default=None, alias="contextFeatures")
    actions: list[RankableAction] = Field(min_length=1, max_length=MAX_ACTIONS)


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
    surface: Literal["tips", "personalizer"]
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
    results: ExperimentResults


# --- evaluations ---------------------------------------------------------------------------


class EvaluationCreate(Strict):
    surface: Literal["tips", "personalizer"]
    start: datetime | None = Field(
        default=None, description="Decisions created at or after (UTC when no offset)"
    )
    end: datetime | None = Field(
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
        default="action-mean", description="DR's reward model (see rewards.evaluation)"
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
