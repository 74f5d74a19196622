"""Rule policies: a fixed preference with a small uniform floor, so their logs stay evaluable.

`most-urgent-todo` prefers the action whose features mark it as a todo (any feature group with
`"kind": "todo"`) that is the most urgent: overdue first (`"overdue": true`), then the highest
`"priority"` (a number; Todoist's API gives 4 to its most urgent "p1"), then the first offered.
Without any todo among the candidates every action is equally likely.

`random-time` prefers nothing: every action is equally likely wherever one decision is all the
rule sees. It is the timing surface's random-time arm (ADR 0014): at the timing surface's
decision points, which know the day's remaining points and the pushes left of the dose, it sends
with probability "pushes left / points left" (`notifier.pacing.RandomTime`), so its pushes fall
at uniformly random points of the whole day rather than a coin flip's first few.

The pmf is deterministic: the preferred action gets ``1 - floor + floor / n`` and every other
action ``floor / n`` (``floor`` = 0.05). The floor keeps every propensity positive, so
counterfactual estimators (IPS, DR) can evaluate other policies on a rule's logs; a pure argmax
rule would make every action it never picks invisible to them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from bandit.events import Action, Features, JSONValue
from policies.stateless import StatelessPolicy

FLOOR = 0.05
"""Probability mass spread uniformly over all candidates."""

Urgency = tuple[bool, float]


def _todo_urgency(value: JSONValue) -> Urgency | None:
    """The urgency of a feature group that describes a todo, searched depth-first."""
    if isinstance(value, dict):
        if value.get("kind") == "todo":
            priority = value.get("priority")
            number = (
                float(priority)
                if isinstance(priority, int | float) and not isinstance(priority, bool)
                else 0.0
            )
            return (value.get("overdue") is True, number)
        for inner in value.values():
            found = _todo_urgency(inner)
            if found is not None:
                return found
    return None


def urgency(action: Action) -> Urgency | None:
    """`(overdue, priority)` of a todo action, or None when the action is not a todo."""
    for feature_object in action.features:
        found = _todo_urgency(dict(feature_object))
        if found is not None:
            return found
    return None


def most_urgent_todo(actions: Sequence[Action]) -> int | None:
    """Index of the most urgent todo, the first one on ties; None without todos."""
    best: tuple[Urgency, int] | None = None
    for i, action in enumerate(actions):
        score = urgency(action)
        if score is not None and (best is None or score > best[0]):
            best = (score, i)
    return best[1] if best is not None else None


def no_preference(actions: Sequence[Action]) -> int | None:
    """Every action alike (the rule of `RANDOM_TIME`)."""
    return None


RANDOM_TIME = "random-time"
"""The rule of random-time delivery on the timing surface (see the module doc)."""

RULES: dict[str, Callable[[Sequence[Action]], int | None]] = {
    "most-urgent-todo": most_urgent_todo,
    RANDOM_TIME: no_preference,
}
"""Rule name (a rule spec's `args`) -> the function choosing the preferred action."""


def floored_pmf(preferred: int | None, n: int, floor: float = FLOOR) -> list[float]:
    """`1 - floor` on `preferred` plus `floor` spread uniformly; uniform when None."""
    if preferred is None:
        return [1.0 / n] * n
    pmf = [floor / n] * n
    pmf[preferred] += 1.0 - floor
    return pmf


class Policy(StatelessPolicy):
    def __init__(self, name: str, model_key: str, rule: str) -> None:
        super().__init__(name, model_key)
        self.rule = rule
        self._choose = RULES[rule]

    def pmf(
        self, context: Features, actions: Sequence[Action], action_lines: Sequence[str]
    ) -> list[float]:
        return floored_pmf(self._choose(actions), len(actions))
