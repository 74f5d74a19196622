r"""Switch-DR: DR on events with a moderate importance weight, the reward model alone elsewhere.

    V̂ = (1/n) Σ_i [ v̂_i + 1{w_i <= τ} w_i (r_i - r̂_i) ]

Events whose weight exceeds ``τ`` — the rare, high-variance ones — fall back to the direct method.
``τ = inf`` is DR; ``τ`` below every weight is DM. This is the doubly robust form of the switch
estimator (as in Open Bandit Pipeline's ``SwitchDoublyRobust``), computable from the per-event
``r̂`` and ``v̂`` alone. Intervals cover ``E[V̂]``, which is biased by the model's error on the
switched-off actions.

Reference: Y.-X. Wang, A. Agarwal & M. Dudík (2017), "Optimal and adaptive off-policy evaluation
in contextual bandits", ICML.
"""

from __future__ import annotations

import numpy as np

from rewards.estimators import _validation as check
from rewards.estimators import dr
from rewards.estimators._validation import FloatArray


class Estimator(dr.Estimator):
    """Switch-DR with threshold ``tau``; other parameters as :class:`.dr.Estimator`.

    Parameters
    ----------
    tau
        Weights above ``tau >= 0`` switch the event to the direct method.
    """

    def __init__(
        self,
        tau: float,
        *,
        reward_range: tuple[float, float] | None = None,
        max_weight: float | None = None,
    ) -> None:
        super().__init__(reward_range=reward_range, max_weight=max_weight)
        self._tau = check.bounded_below("tau", tau, 0.0, inclusive=True)

    @property
    def tau(self) -> float:
        return self._tau

    def _transform(self, w: FloatArray) -> FloatArray:
        return np.where(w <= self._tau, w, 0.0)

    def _weight_cap(self) -> float:
        return self._tau

    def _config(self) -> dict[str, object]:
        return {**super()._config(), "tau": self._tau}
