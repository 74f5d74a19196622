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
class PastChoice:
    """One earlier decision about a person, as their history needs it: when, which action was
    chosen, and their reaction to it (None while they have not reacted)."""

    event_id: str
    created_at: datetime
    chosen_action: str
    reaction: str | None


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


@dataclass(frozen=True, slots=True)
class WindowCounts:
    """What a window of a surface's log adds up to (see `Store.window_counts`).

    `rewarded`, `late` and `defaulted` count activated decisions: with a reward received in
    their reward window, with one received after it (kept, never learned), and learned with the
    default reward (no reward in the window). Reward times are those of the on-time rewards.
    """

    decisions: int
    activated: int
    rewarded: int
    late: int
    defaulted: int
    min_propensity: float | None
    first_reward_at: datetime | None
    last_reward_at: datetime | None
    first_decision_at: datetime | None
    last_decision_at: datetime | None


@dataclass(frozen=True, slots=True)
class ModelUse:
    """A model that logged decisions of a window: how many, with which versions, its newest
    snapshot (None when it never published one) and when its decisions' on-time rewards came."""

    model_key: str
    policy: str
    decisions: int
    min_version: int
    max_version: int
    snapshot_version: int | None
    snapshot_at: datetime | None
    first_reward_at: datetime | None
    last_reward_at: datetime | None


@dataclass(frozen=True, slots=True)
class LoggedSample:
    """A decision as the checkup reads it: its pmf, the chosen index, the learned reward (None
    until learned) and the logged VW example (shared line, then one line per candidate)."""

    event_id: str
    created_at: datetime
    pmf: tuple[float, ...]
    chosen_index: int
    learned_reward: float | None
    example: tuple[str, ...]
