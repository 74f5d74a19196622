"""The v0 policy: every candidate equally likely. Nothing to learn."""

from __future__ import annotations

from collections.abc import Sequence

from bandit.events import Action, Features
from policies.stateless import StatelessPolicy


class Policy(StatelessPolicy):
    def pmf(
        self, context: Features, actions: Sequence[Action], action_lines: Sequence[str]
    ) -> list[float]:
        return [1.0 / len(actions)] * len(actions)
