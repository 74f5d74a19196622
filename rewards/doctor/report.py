"""What the checkup reports: plain frozen dataclasses with no NaN, served as JSON as they are."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

Code = Literal[
    "no_decisions",
    "few_decisions",
    "identifier_feature",
    "timestamp_feature",
    "rare_feature",
    "few_rewards",
    "late_rewards",
    "stale_model",
    "no_exploration",
    "low_propensity",
]


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason the surface may not be learning, and what to do about it.

    `namespace` and `feature` name the VW namespace and feature at fault (as the logged VW
    examples spell them); both are None for warnings about rewards, models or exploration.
    """

    code: Code
    namespace: str | None
    feature: str | None
    message: str
    action: str


@dataclass(frozen=True, slots=True)
class ValueEstimate:
    """A policy's estimated mean reward (SNIPS) with its Cressie-Read 95% interval, over `n`
    learned decisions of the sample; None where the estimate is undefined.

    `effective_n` is the importance weights' Kish effective sample size, (Σw)² / Σw²: `n` for
    the online policy, and for the baseline about the number of decisions that chose the first
    candidate, which is what its estimate really rests on. None when no decision agreed.
    """

    value: float | None
    low: float | None
    high: float | None
    n: int
    effective_n: float | None

    @property
    def effectively(self) -> int | None:
        """The decisions the estimate effectively rests on, rounded, when fewer than `n`."""
        if self.effective_n is None or round(self.effective_n) >= self.n:
            return None
        return round(self.effective_n)


@dataclass(frozen=True, slots=True)
class ModelStatus:
    """A model that logged decisions in the window."""

    model_key: str
    policy: str
    learns: bool
    """False for policies without a model (random, rules): they are never stale."""
    decisions: int
    version: int
    """The newest published version (the highest logged one when none was published)."""
    updated_at: datetime | None
    """When that version was published: the model's last change. None: never published."""
    age_seconds: float | None
    first_reward_at: datetime | None
    last_reward_at: datetime | None


@dataclass(frozen=True, slots=True)
class Diagnosis:
    """Is the surface learning? The figures of one window of its log, and the warnings.

    Shares of activated decisions: `rewarded_share` got a reward within their reward window,
    `default_reward_share` were learned with the default reward, `late_reward_share` got theirs
    after the window. `exploration_share`: sampled decisions whose chosen action was not the
    policy's top one (not an argmax of the logged pmf). `min_propensity` is the smallest
    logged probability of a chosen action in the whole window. The `model_*` fields describe
    the learning model with the most decisions. `online` is the logged policy's estimated
    value, `baseline` always the first candidate's.
    """

    surface: str
    start: datetime
    end: datetime
    decisions: int
    sampled: int
    """Decisions read for the exploration share, the estimates and the feature checks."""
    activated: int
    rewarded_share: float | None
    default_reward_share: float | None
    late_reward_share: float | None
    exploration_share: float | None
    min_propensity: float | None
    last_reward_at: datetime | None
    model_key: str | None
    model_version: int | None
    model_updated_at: datetime | None
    model_age_seconds: float | None
    online: ValueEstimate | None
    baseline: ValueEstimate | None
    models: tuple[ModelStatus, ...]
    warnings: tuple[Finding, ...]
