r"""The reward model of the doubly robust estimate: a predicted reward for every logged candidate.

pyvw's ``cb_explore_adf`` predictions expose only the pmf, not the candidate's own regressor, so
DR uses one reward model shared by all policies, trained progressively on the same events
(predict, then learn) so that it never scores an event it has learned:

``"action-mean"`` (default)
    The running mean reward of each candidate, keyed by its logged VW action line (its exact
    features), falling back to the running mean over all events for a candidate never chosen
    yet. Cheap and crude; DR stays unbiased whatever the model, only its variance depends on it.
``"vw"``
    A VW ``--cb_adf --cb_type mtr -q ::`` regressor predicting each candidate's cost
    (:class:`bandit.model.Model`); better when the context matters, at the price of one more VW
    predict and learn per event.

The run clips predictions to the reward range.
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

from bandit.model import Model
from rewards.estimators._validation import FloatArray
from rewards.ope.logged import Batch, padded

RewardModelName = Literal["action-mean", "vw"]

REWARD_MODEL_ARGS = "--cb_adf --cb_type mtr -q :: --quiet"


class RewardModel(Protocol):
    def predict_learn(self, batch: Batch) -> FloatArray:
        """Predicted reward per candidate, shape like ``batch.p_log_all``; each event is
        predicted before the model learns it."""
        ...

    def close(self) -> None: ...


class ActionMean:
    """Running mean reward per logged action line; the global running mean for unseen ones."""

    def __init__(self) -> None:
        self._sums: dict[str, list[float]] = {}
        self._total = 0.0
        self._n = 0

    def predict_learn(self, batch: Batch) -> FloatArray:
        sums = self._sums
        rows = []
        for lines, chosen_index, reward in zip(
            batch.action_lines, batch.chosen.tolist(), batch.reward.tolist(), strict=True
        ):
            prior = self._total / self._n if self._n else 0.0
            row = []
            for line in lines:
                seen = sums.get(line)
                row.append(seen[0] / seen[1] if seen else prior)
            rows.append(row)
            chosen = sums.setdefault(lines[chosen_index], [0.0, 0.0])
            chosen[0] += reward
            chosen[1] += 1.0
            self._total += reward
            self._n += 1
        return padded(rows, batch.p_log_all.shape[1])

    def close(self) -> None:
        pass


class VwRegressor:
    """A progressive VW ``--cb_adf`` regressor of each candidate's cost."""

    def __init__(self, args: str = REWARD_MODEL_ARGS) -> None:
        self._model = Model(args)

    def predict_learn(self, batch: Batch) -> FloatArray:
        out = np.full_like(batch.p_log_all, np.nan)
        replay = self._model.replay
        for i, event in enumerate(batch.events):
            costs = replay(event.learn_example())
            out[i, : len(costs)] = np.negative(costs)
        return out

    def close(self) -> None:
        self._model.close()


def reward_model(name: RewardModelName) -> RewardModel:
    if name == "vw":
        return VwRegressor()
    return ActionMean()
