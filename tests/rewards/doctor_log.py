"""A seeded decision log for the "is it learning?" checkup: healthy unless a test makes it
otherwise, written through the store as the service writes it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

from bandit.events import Action, Decision, Features, JSONValue
from bandit.features import action_lines, adf_example
from bandit.store import Learned, Snapshot, Store

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
WINDOW = timedelta(hours=24)
N = 120
PARTS = ("morning", "afternoon", "evening", "night")
ACTIONS = tuple(
    Action(f"tip-{j}", [{"tip": {"category": c, "effort": "quick"}}])
    for j, c in enumerate(("movement", "rest", "focus"))
)
EPSILON_PMF = (0.8, 0.1, 0.1)
MODEL = "tips:vw-epsilon"


@dataclass
class Log:
    """Writes a seeded log: each test changes one thing about a healthy one."""

    store: Store
    rng: np.random.Generator
    seq: int = 0
    marks: list[Learned] = field(default_factory=list)

    def decide(
        self,
        i: int,
        *,
        context: Features | None = None,
        pmf: tuple[float, ...] = EPSILON_PMF,
        chosen: int | None = None,
        policy: str = "vw-epsilon",
        model_key: str = MODEL,
        at: datetime | None = None,
    ) -> Decision:
        created = at or T0 + timedelta(minutes=5 * i)
        if chosen is None:
            chosen = int(self.rng.choice(len(pmf), p=pmf))
        decision = Decision(
            event_id=f"d-{model_key}-{i}",
            surface="tips",
            principal=f"person-{i % 40}",
            context=context if context is not None else healthy_context(i),
            actions=ACTIONS,
            pmf=pmf,
            chosen_index=chosen,
            policy=policy,
            model_key=model_key,
            model_version=3,
            created_at=created,
            activated_at=created,
            example=tuple(adf_example(context or healthy_context(i), action_lines(ACTIONS))),
        )
        assert self.store.insert_decision(decision)
        return decision

    def reward(self, decision: Decision, value: float, *, after: timedelta) -> None:
        self.store.record_reward(
            decision.event_id,
            value,
            reaction="done" if value > 0 else "dismiss",
            window=timedelta(hours=1),
            at=decision.created_at + after,
        )

    def learn(self, decision: Decision, value: float) -> None:
        """Mark it learned (at the next `snapshot`, in one statement)."""
        self.seq += 1
        self.marks.append(Learned(decision.event_id, self.seq, value))

    def snapshot(self, at: datetime, model_key: str = MODEL) -> None:
        self.store.mark_learned(self.marks)
        self.marks.clear()
        self.store.save_snapshot(Snapshot(model_key, "--cb_explore_adf", 3, self.seq, at, b"vw"))

    def healthy(
        self,
        n: int = N,
        *,
        context: Callable[[int], Features] | None = None,
        rewarded: Callable[[int], bool] = lambda i: i % 3 != 0,
        pmf: tuple[float, ...] = EPSILON_PMF,
        chosen: int | None = None,
        **decide: object,
    ) -> list[Decision]:
        """`n` decisions five minutes apart, rewarded as `rewarded` says (within the window),
        learned; the model published just after the last one."""
        made = []
        for i in range(n):
            decision = self.decide(
                i,
                context=context(i) if context else None,
                pmf=pmf,
                chosen=chosen,
                **decide,  # type: ignore[arg-type]
            )
            value = float(self.rng.random() < 0.6)
            if rewarded(i):
                self.reward(decision, value, after=timedelta(minutes=2))
                self.learn(decision, value)
            else:
                self.learn(decision, 0.0)  # the window closed: the default reward
            made.append(decision)
        self.snapshot(made[-1].created_at + timedelta(minutes=3))
        return made


def healthy_context(i: int) -> Features:
    clock: dict[str, JSONValue] = {"part": PARTS[i % 4], "weekend": i % 7 >= 5}
    return [{"clock": clock}, {"mood": {"level": ("low", "okay", "high")[i % 3]}}]
