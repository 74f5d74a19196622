"""What the decision log hands out: typed records, never table rows."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bandit.events import Decision


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
