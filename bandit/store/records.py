"""What the decision log hands out: typed records, never table rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bandit.events import Decision, Features


@dataclass(frozen=True, slots=True)
class LoggedDecision:
    """A decision as logged, with its activation, reward and learning state."""

    decision: Decision
    deferred: bool
    reward: float | None
    reaction: str | None
    reward_late: bool
    learn_seq: int | None
    learned_reward: float | None


@dataclass(frozen=True, slots=True)
class RewardOutcome:
    """What `record_reward` did: `created` is False when a reward was already recorded."""

    created: bool
    value: float
    reaction: str | None
    late: bool


@dataclass(frozen=True, slots=True)
class Snapshot:
    model_key: str
    args: str
    version: int
    through_seq: int
    created_at: datetime
    data: bytes


@dataclass(frozen=True, slots=True)
class Learnable:
    """The lean view of a decision the learner needs: no feature JSON, the logged VW example."""

    event_id: str
    model_key: str
    chosen_index: int
    propensity: float
    activated_at: datetime | None
    reward: float | None
    reward_late: bool
    learn_seq: int | None
    learned_reward: float | None
    example: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Learned:
    """A learning mark: decision `event_id` learned as example `seq` with `reward`."""

    event_id: str
    seq: int
    reward: float


SettledRow = tuple[str, datetime, str, str, str, int, int | None, float | None]
"""`(event_id, created_at, context JSON, actions JSON, pmf JSON, chosen_index, learn_seq,
learned_reward)`, see `iter_settled`."""

LearnedRow = tuple[str, datetime, tuple[float, ...], int, float, str]
"""`(event_id, created_at, pmf, chosen_index, learned_reward, vw_example)`, see `iter_learned`."""


@dataclass(frozen=True, slots=True)
class PrePeriodSums:
    """Sums over the units of an arm that have a pre-period value `x` (their covariate), with
    `y` each unit's in-experiment mean learned reward; see `arm_aggregates`."""

    units: int
    sum_x: float
    sum_xx: float
    sum_xy: float
    sum_y: float


@dataclass(frozen=True, slots=True)
class ArmAggregate:
    """Per-unit sufficient statistics of one arm's learned decisions in an experiment.

    Each unit contributes its decision count `n`, its mean learned reward and the share of its
    decisions with the counted reaction; the fields are sums of those over the arm's units.
    """

    arm: str
    units: int
    decisions: int
    reward_sum: float
    reward_sq: float
    reaction_sum: float
    reaction_sq: float
    n_sq: float
    pre_period: PrePeriodSums | None
    """None when no pre-period was asked for."""


@dataclass(frozen=True, slots=True)
class RewardBucket:
    """An arm's learned decisions created in [start, start + bucket): count, sum and sum of
    squares of their learned rewards."""

    arm: str
    start: datetime
    n: int
    total: float
    squares: float


@dataclass(frozen=True, slots=True)
class PersonalReaction:
    reaction: str | None
    reward: float
    at: datetime
    late: bool


@dataclass(frozen=True, slots=True)
class PersonalDecision:
    """A decision about a person as their data export shows it: what was chosen among which
    candidates with which probabilities, and their reaction. No features of the candidates."""

    event_id: str
    surface: str
    created_at: datetime
    context: Features
    action_ids: list[str]
    pmf: list[float]
    chosen_action: str
    propensity: float
    policy: str
    model_version: int
    experiment: str | None
    arm: str | None
    missing_sources: list[str]
    activated_at: datetime | None
    reaction: PersonalReaction | None
