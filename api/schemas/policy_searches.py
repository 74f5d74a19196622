"""Wire schemas of policy searches (issue 6) and promoting their winner."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from api.schemas.base import Instant, Strict, SurfaceName
from api.schemas.evaluations import PolicyEvaluationPublic
from api.schemas.experiments import ExperimentPublic
from api.schemas.policies import PolicyPublic


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
