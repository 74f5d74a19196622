"""`oo simulate`: synthetic people drive a running server over HTTP, and we watch it learn.

Each synthetic person arrives in a context (part of day, mood, persona) and is shown one of a
fixed set of actions through the Personalizer-compatible rank call. Their hidden preference is a
click probability that depends on the context; they reward 1 with that probability, else 0.
Because the world is known, the random policy's expected reward on the very same contexts is
computed exactly (the mean click probability over the candidates), so the serving policy is
compared with random on identical traffic, window by window.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
import numpy as np

PARTS = ("morning", "afternoon", "evening", "night")
MOODS = ("low", "okay", "high")
PERSONAS = ("athlete", "desk-worker", "parent")
ACTIONS = ("movement", "rest", "focus", "social", "mindfulness", "nutrition")


class World:
    """Hidden preferences: each action's click probability is a logistic function of additive
    part-of-day, mood and persona effects, so the best action changes with the context."""

    def __init__(self, seed: int) -> None:
        rng = np.random.default_rng(seed)
        n = len(ACTIONS)
        part = rng.normal(0.0, 1.2, (len(PARTS), n))
        mood = rng.normal(0.0, 1.2, (len(MOODS), n))
        persona = rng.normal(0.0, 1.2, (len(PERSONAS), n))
        logits = part[:, None, None, :] + mood[None, :, None, :] + persona[None, None, :, :] - 1.5
        self.click = 1.0 / (1.0 + np.exp(-logits))
        self.rng = np.random.default_rng(seed + 1)

    def context(self) -> tuple[int, int, int]:
        return (
            int(self.rng.integers(len(PARTS))),
            int(self.rng.integers(len(MOODS))),
            int(self.rng.integers(len(PERSONAS))),
        )

    def features(self, ctx: tuple[int, int, int]) -> list[dict[str, object]]:
        part, mood, persona = ctx
        return [
            {"clock": {"part": PARTS[part]}},
            {"mood": {"level": MOODS[mood]}},
            {"person": {"persona": PERSONAS[persona]}},
        ]

    def probabilities(self, ctx: tuple[int, int, int]) -> np.ndarray:
        probabilities: np.ndarray = self.click[ctx]
        return probabilities

    def react(self, ctx: tuple[int, int, int], action: int) -> float:
        return 1.0 if self.rng.random() < self.click[ctx][action] else 0.0


ACTION_PAYLOAD = [
    {
        "id": name,
        "features": [{"item": {"category": name, "effort": "short" if i % 2 else "quick"}}],
    }
    for i, name in enumerate(ACTIONS)
]


@dataclass
class Window:
    events: int = 0
    reward: float = 0.0
    expected: float = 0.0
    random: float = 0.0
    best: float = 0.0

    def row(self) -> dict[str, float]:
        n = max(self.events, 1)
        return {
            "events": self.events,
            "policy_reward": self.reward / n,
            "policy_expected": self.expected / n,
            "random_expected": self.random / n,
            "best_expected": self.best / n,
        }


@dataclass
class Report:
    windows: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def tail(self, share: float = 0.25) -> dict[str, float]:
        """Means over the last `share` of windows (after learning had time to happen)."""
        rows = self.windows[-max(1, int(len(self.windows) * share)) :]
        keys = ("policy_reward", "policy_expected", "random_expected", "best_expected")
        return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def run(
    url: str,
    *,
    events: int,
    window: int,
    seed: int,
    key: str = "simulation",
    on_event: Callable[[int], None] | None = None,
    client: httpx.Client | None = None,
) -> Report:
    world = World(seed)
    report = Report()
    started = time.perf_counter()
    own = client is None
    http = client or httpx.Client(base_url=url, timeout=10.0)
    headers = {"Ocp-Apim-Subscription-Key": key}
    current = Window()
    try:
        for i in range(events):
            ctx = world.context()
            body = {
                "contextFeatures": world.features(ctx),
                "actions": ACTION_PAYLOAD,
                "eventId": f"sim-{seed}-{i}-{time.time_ns()}",
            }
            ranked = http.post("/personalizer/v1.0/rank", json=body, headers=headers)
            ranked.raise_for_status()
            answer = ranked.json()
            chosen = ACTIONS.index(answer["rewardActionId"])
            value = world.react(ctx, chosen)
            http.post(
                f"/personalizer/v1.0/events/{answer['eventId']}/reward",
                json={"value": value},
                headers=headers,
            ).raise_for_status()
            probabilities = world.probabilities(ctx)
            current.events += 1
            current.reward += value
            current.expected += float(probabilities[chosen])
            current.random += float(probabilities.mean())
            current.best += float(probabilities.max())
            if current.events == window:
                report.windows.append(current.row())
                current = Window()
            if on_event is not None:
                on_event(i + 1)
    finally:
        if own:
            http.close()
    if current.events:
        report.windows.append(current.row())
    report.seconds = time.perf_counter() - started
    return report
