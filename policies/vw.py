"""A VW `--cb_explore_adf` policy: the pmf comes from the model its hub serves."""

from __future__ import annotations

from collections.abc import Sequence

from bandit.events import Action, Features
from bandit.hub import ModelHub
from bandit.model import Model


class Policy:
    def __init__(self, name: str, model_key: str, hub: ModelHub) -> None:
        self._name = name
        self._model_key = model_key
        self._hub = hub

    @property
    def name(self) -> str:
        return self._name

    @property
    def model_key(self) -> str:
        return self._model_key

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
