"""From a person's reaction to a reward. The mapping is configuration (OO_REACTION_REWARDS)."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Literal

Reaction = Literal["done", "useful", "later", "dismiss"]
REACTIONS: tuple[Reaction, ...] = ("done", "useful", "later", "dismiss")

DEFAULT_REWARDS: Mapping[str, float] = {
    "done": 1.0,
    "useful": 1.0,
    "later": 0.25,
    "dismiss": -0.5,
}


class RewardMapping:
    """Reaction -> reward in [-1, 1]; every reaction must be mapped."""

    def __init__(self, rewards: Mapping[str, float] = DEFAULT_REWARDS) -> None:
        missing = [r for r in REACTIONS if r not in rewards]
        if missing:
            raise ValueError(f"`reaction_rewards` must map every reaction; missing {missing}")
        unknown = sorted(set(rewards) - set(REACTIONS))
        if unknown:
            raise ValueError(f"`reaction_rewards` has unknown reactions {unknown}")
        for reaction, value in rewards.items():
            if not math.isfinite(value) or not -1.0 <= value <= 1.0:
                raise ValueError(f"`reaction_rewards.{reaction}` must be in [-1, 1] (got {value})")
        self._rewards: dict[str, float] = {r: float(rewards[r]) for r in REACTIONS}

    @classmethod
    def from_json(cls, text: str) -> RewardMapping:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ValueError(f"`reaction_rewards` is not valid JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise ValueError("`reaction_rewards` must be a JSON object")
        return cls({str(k): float(v) for k, v in data.items()})

    def reward(self, reaction: Reaction) -> float:
        return self._rewards[reaction]

    def as_dict(self) -> dict[str, float]:
        return dict(self._rewards)
