"""The shared shape of policies: a registered name and the model key its decisions learn into.

Policies without a learned model (random, rules) stay at model version 0 forever.
"""

from __future__ import annotations

from collections.abc import Sequence

from bandit.events import Action, Features


class NamedPolicy:
    def __init__(self, name: str, model_key: str) -> None:
        self._name = name
        self._model_key = model_key

    @property
    def name(self) -> str:
        return self._name

    @property
    def model_key(self) -> str:
        return self._model_key


class StatelessPolicy(NamedPolicy):
    @property
    def model_version(self) -> int:
        return 0

    def pmf(
        self, context: Features, actions: Sequence[Action], action_lines: Sequence[str]
    ) -> list[float]:
        raise NotImplementedError
