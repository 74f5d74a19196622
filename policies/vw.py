"""A VW `--cb_explore_adf` policy: the pmf comes from the model its hub serves."""

from __future__ import annotations

from collections.abc import Sequence

from bandit.events import Action, Features
from bandit.hub import ModelHub
from bandit.model import Model
from policies.stateless import NamedPolicy


class Policy(NamedPolicy):
    def __init__(self, name: str, model_key: str, hub: ModelHub) -> None:
        super().__init__(name, model_key)
        self._hub = hub

    def _model(self) -> Model:
        model = self._hub.get(self._model_key)
        if model is None:
            raise LookupError(f"no model can be built for {self._model_key!r}")
        return model

    @property
    def model_version(self) -> int:
        return self._model().version

    def pmf(
        self, context: Features, actions: Sequence[Action], action_lines: Sequence[str]
    ) -> list[float]:
        return self._model().predict(context, action_lines)
