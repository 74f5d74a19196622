r"""DR with optimistic shrinkage (DR-OS): DR whose residual weights are shrunk towards 0.

    V̂ = (1/n) Σ_i [ v̂_i + ŵ_i (r_i - r̂_i) ],        ŵ = λ w / (w² + λ)

The shrinkage minimizes a bound on mean squared error assuming the model's residuals are small
("optimistic"); ``ŵ <= min(w, √λ / 2)``, so large weights are damped smoothly rather than cut.
``λ → inf`` is DR and ``λ → 0`` is DM. Intervals cover ``E[V̂]``.

Reference: Y. Su, M. Dimakopoulou, A. Krishnamurthy & M. Dudík (2020), "Doubly robust off-policy
evaluation with shrinkage", ICML.
"""

from __future__ import annotations

import math

from rewards.estimators import _validation as check
from rewards.estimators import dr
from rewards.estimators._validation import FloatArray


class Estimator(dr.Estimator):
    """DR-OS with shrinkage ``lambda_``; other parameters as :class:`.dr.Estimator`.

    Parameters
    ----------
    lambda_
        The shrinkage ``λ > 0`` (``inf`` allowed, giving DR).
    """

    def __init__(
        self,
        lambda_: float,
        *,
        reward_range: tuple[float, float] | None = None,
        max_weight: float | None = None,
    ) -> None:
        super().__init__(reward_range=reward_range, max_weight=max_weight)
        self._lambda = check.bounded_below("lambda_", lambda_, 0.0)

    @property
    def lambda_(self) -> float:
        return self._lambda

    def _transform(self, w: FloatArray) -> FloatArray:
        if math.isinf(self._lambda):
            return w
        return self._lambda * w / (w * w + self._lambda)

    def _weight_cap(self) -> float:
        # λw/(w² + λ) peaks at w = √λ.
        return math.sqrt(self._lambda) / 2.0

    def _config(self) -> dict[str, object]:
        return {**super()._config(), "lambda_": self._lambda}
