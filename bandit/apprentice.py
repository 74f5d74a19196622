"""Apprentice-mode metrics: how often the policy would have chosen what was served.

In apprentice mode a surface serves its baseline (first) action with probability 1
(`policies.serving.Baseline`) and the decisions are learned into the policy's model like any
other. Just before the model learns such a decision, :class:`Imitation` asks it which action it
would have chosen; the share of decisions where that is the baseline is the imitation (match)
rate, which tells the operator when the policy has caught up with the baseline. The learner
knows nothing of modes: it shows each example it learns to its watchers (`bandit.learner`),
and this is one. The counters live in the surface's configuration row
(`bandit.surface_config.SurfaceConfigs.add_apprentice`), restarted whenever apprentice mode is
entered.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from bandit.model import LearnExample, Model
from bandit.model_keys import surface_of
from bandit.store import Learnable

if TYPE_CHECKING:
    from bandit.surface_config import SurfaceConfigs

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ApprenticeCounts:
    """Events learned in apprentice mode, and those where the policy would have imitated the
    baseline (chosen the same action), with the rewards of each."""

    events: int = 0
    rewards: float = 0.0
    imitated_events: int = 0
    imitated_rewards: float = 0.0

    def __add__(self, other: ApprenticeCounts) -> ApprenticeCounts:
        return ApprenticeCounts(
            self.events + other.events,
            self.rewards + other.rewards,
            self.imitated_events + other.imitated_events,
            self.imitated_rewards + other.imitated_rewards,
        )

    @property
    def match_rate(self) -> float | None:
        return self.imitated_events / self.events if self.events else None


@dataclass(frozen=True, slots=True)
class ApprenticeMetrics:
    start: datetime
    total: ApprenticeCounts
    last_batch: ApprenticeCounts
    last_event_at: datetime | None


def served_baseline(item: Learnable) -> bool:
    """Served in apprentice mode: the first action, drawn with probability 1."""
    return item.chosen_index == 0 and item.propensity >= 1.0 - 1e-9


class Imitation:
    """A learner watcher (`bandit.learner.Watcher`) that counts, per surface in apprentice
    mode, how often the model would have chosen the baseline it was taught."""

    def __init__(self, configs: SurfaceConfigs) -> None:
        self.configs = configs
        self._batch: dict[str, ApprenticeCounts] = {}
        self._lock = threading.Lock()

    def wants(self, item: Learnable) -> bool:
        surface = surface_of(item.model_key)
        return self.configs.get(surface).learning_mode == "Apprentice" and served_baseline(item)

    def before_learning(self, model_key: str, model: Model, example: LearnExample) -> None:
        # The would-be choice is asked before the model learns the event.
        hit = model.greedy(example.lines) == 0
        tally = ApprenticeCounts(1, example.reward, int(hit), example.reward if hit else 0.0)
        surface = surface_of(model_key)
        with self._lock:
            self._batch[surface] = self._batch.get(surface, ApprenticeCounts()) + tally

    def committed(self, at: datetime) -> None:
        """The batch's learning marks are durable: add its counts."""
        with self._lock:
            batch, self._batch = self._batch, {}
        for surface, tally in batch.items():
            try:
                self.configs.add_apprentice(surface, tally, at)
            except Exception:  # metrics only; the learned marks are already durable
                log.warning("could not record apprentice metrics of %s", surface, exc_info=True)

    def rolled_back(self) -> None:
        """The batch was not marked learned (it will be learned again): forget its counts."""
        with self._lock:
            self._batch = {}
