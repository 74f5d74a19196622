"""Personalizer's wire schemas: camelCase bodies, as Azure AI Personalizer's REST API and its SDKs
spell them (facts in `shared/PERSONALIZER.md`).

Unknown fields are ignored, as Personalizer ignored them (SDK compatibility). Durations travel
as ISO 8601 text (`api.personalizer.wire`); times are `api.schemas.base.Instant`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from api.schemas.base import EventId, Instant, NoNul
from bandit.features import check_features

MAX_ACTIONS = 50

# --- decisions -------------------------------------------------------------------------------

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


# --- administration --------------------------------------------------------------------------

PersonalizerId = Annotated[str, StringConstraints(min_length=1, max_length=256), NoNul]
LearningModeName = Literal["Online", "Apprentice", "LoggingOnly"]
JobStatus = Literal[
    "Succeeded",
    "Running",
    "Failed",
    "NotSubmitted",
    "Timeout",
    "OptimalPolicyApplied",
    "OnlinePolicyRetained",
    "Canceled",
]


class ApprenticeModeBatch(PersonalizerModel):
    number_of_events: int = Field(alias="numberOfEvents")
    sum_of_rewards: float = Field(alias="sumOfRewards")
    number_of_imitated_events: int = Field(alias="numberOfImitatedEvents")
    sum_of_imitated_rewards: float = Field(alias="sumOfImitatedRewards")


class ApprenticeModeMetrics(ApprenticeModeBatch):
    start_time: datetime = Field(alias="startTime")
    last_processed_event_time: datetime | None = Field(alias="lastProcessedEventTime")
    last_batch_metrics: ApprenticeModeBatch | None = Field(default=None, alias="lastBatchMetrics")


class ServiceConfigurationBase(PersonalizerModel):
    reward_wait_time: Annotated[str, NoNul] = Field(
        alias="rewardWaitTime", description="ISO 8601 duration, 5 seconds to 2 days (PT10M)"
    )
    default_reward: float = Field(alias="defaultReward", strict=True)
    reward_aggregation: str = Field(alias="rewardAggregation", description="earliest or sum")
    exploration_percentage: float = Field(
        alias="explorationPercentage", strict=True, description="Epsilon, in [0, 1]"
    )
    model_export_frequency: str = Field(alias="modelExportFrequency")
    log_retention_days: int = Field(alias="logRetentionDays", strict=True)
    log_mirror_enabled: bool | None = Field(default=None, alias="logMirrorEnabled")
    log_mirror_sas_uri: Annotated[str, NoNul] | None = Field(
        default=None, alias="logMirrorSasUri", max_length=2048
    )
    learning_mode: LearningModeName | None = Field(default=None, alias="learningMode")
    is_auto_optimization_enabled: bool | None = Field(
        default=None, alias="isAutoOptimizationEnabled"
    )
    auto_optimization_frequency: str | None = Field(default=None, alias="autoOptimizationFrequency")
    auto_optimization_start_date: Instant | None = Field(
        default=None, alias="autoOptimizationStartDate"
    )
    model_retrain_days: int | None = Field(default=None, alias="modelRetrainDays", strict=True)


class ServiceConfigurationUpdate(ServiceConfigurationBase):
    """Optional fields left out keep their current values."""


class ServiceConfigurationPublic(ServiceConfigurationBase):
    last_configuration_edit_date: datetime | None = Field(
        default=None, alias="lastConfigurationEditDate"
    )
    latest_apprentice_mode_metrics: ApprenticeModeMetrics | None = Field(
        default=None, alias="latestApprenticeModeMetrics"
    )


class PolicyContract(PersonalizerModel):
    name: PersonalizerId
    arguments: Annotated[str, StringConstraints(min_length=1, max_length=1024), NoNul]


class PolicyReferenceContract(PersonalizerModel):
    evaluation_id: PersonalizerId = Field(alias="evaluationId")
    policy_name: PersonalizerId = Field(alias="policyName")


class EvaluationContract(PersonalizerModel):
    name: PersonalizerId
    start_time: Instant = Field(alias="startTime")
    end_time: Instant = Field(alias="endTime")
    policies: list[PolicyContract] = Field(default_factory=list, max_length=10)
    enable_policy_optimization: bool = Field(default=False, alias="enablePolicyOptimization")
    enable_offline_experimentation: bool = Field(
        default=False, alias="enableOfflineExperimentation", description="v1.0's name"
    )


class PolicyResultSummary(PersonalizerModel):
    expected_reward: float | None = Field(alias="expectedReward")
    confidence_interval: list[float | None] = Field(alias="confidenceInterval")


class PolicyResultPoint(PolicyResultSummary):
    time_stamp: datetime = Field(alias="timeStamp")


class PolicyResultTimeseries(PersonalizerModel):
    data: list[PolicyResultPoint]


class PolicyResult(PersonalizerModel):
    name: str
    arguments: str
    policy_source: Literal["Online", "Baseline", "Random", "Custom", "OfflineExperimentation"] = (
        Field(alias="policySource")
    )
    summary: PolicyResultSummary
    timeseries: PolicyResultTimeseries


class EvaluationContent(PersonalizerModel):
    start_time: datetime = Field(alias="startTime")
    end_time: datetime = Field(alias="endTime")
    interval_in_minutes: int = Field(alias="intervalInMinutes")
    value: list[PolicyResult]


class PersonalizerEvaluation(PersonalizerModel):
    id: str
    name: str
    description: str | None = None
    start_time: datetime = Field(alias="startTime")
    end_time: datetime = Field(alias="endTime")
    creation_time: datetime = Field(alias="creationTime")
    status: JobStatus
    evaluation_type: Literal["Manual", "Auto"] = Field(alias="evaluationType")
    optimal_policy: str | None = Field(default=None, alias="optimalPolicy")
    content: EvaluationContent | None = None


class PersonalizerEvaluationList(PersonalizerModel):
    value: list[PersonalizerEvaluation]
    next_link: str | None = Field(default=None, alias="nextLink")


class FeatureImportanceContract(PersonalizerModel):
    name: PersonalizerId
    start_time: Instant = Field(alias="startTime")
    end_time: Instant = Field(alias="endTime")


class FeatureScore(PersonalizerModel):
    namespace: str
    feature_name: str = Field(alias="featureName")
    score: float


class FeatureImportancePublic(PersonalizerModel):
    id: str
    name: str
    description: str | None = None
    start_time: datetime = Field(alias="startTime")
    end_time: datetime = Field(alias="endTime")
    creation_time: datetime = Field(alias="creationTime")
    status: JobStatus
    feature_scores: list[FeatureScore] = Field(default_factory=list, alias="featureScores")


class FeatureImportanceList(PersonalizerModel):
    value: list[FeatureImportancePublic]
    next_link: str | None = Field(default=None, alias="nextLink")


class DateRange(PersonalizerModel):
    from_: datetime | None = Field(default=None, alias="from")
    to: datetime | None = None


class LogsProperties(PersonalizerModel):
    date_range: DateRange = Field(alias="dateRange")


class ModelProperties(PersonalizerModel):
    creation_time: datetime = Field(alias="creationTime")
    last_modified_time: datetime = Field(alias="lastModifiedTime")
