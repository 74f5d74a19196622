"""The one interface every policy implements, whatever its internals.

The decision path only asks a policy for a pmf; whether that comes from a VW model, a uniform
draw or a rule is the policy's business. Learnable policies expose their `Model` through a
`ModelHub` under a model key, so the learner can update them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from bandit.events import Action, Features


class Policy(Protocol):
    """A policy as the decision path sees it."""

    @property
    def name(self) -> str:
        """The registered policy id, logged with every decision."""
        ...

    @property
    def model_key(self) -> str:
        """The key of the model this policy serves (decisions are learned into it)."""
        ...

    @property
    def model_version(self) -> int:
        """The version of the model state the next pmf comes from."""
        ...

    def pmf(
        self, context: Features, actions: Sequence[Action], action_lines: Sequence[str]
    ) -> list[float]:
        """The probability of drawing each action, in the order of `actions`."""
        ...
