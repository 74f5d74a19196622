"""Wire schemas of off-policy evaluations: the request, the job and its result."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.base import Instant, Strict, SurfaceName


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
