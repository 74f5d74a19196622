r"""Clipped (truncated) IPS: IPS with importance weights capped at ``clip``.

    V̂ = (1/n) Σ_i min(w_i, M) r_i

Capping trades a bias (towards 0: for non-negative rewards it underestimates) for a variance
bounded by ``M²``; with ``M >= max w`` it is IPS. Its intervals cover ``E[V̂]``, not the value;
the Cressie-Read interval, which relies on ``E[w] = 1``, is not offered.

References: E. L. Ionides (2008), "Truncated importance sampling", JCGS 17(2); L. Bottou et al.
(2013), "Counterfactual reasoning and learning systems", JMLR 14.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from rewards.estimators import _validation as check
from rewards.estimators import ips
from rewards.estimators._validation import FloatArray
from rewards.estimators.results import IntervalMethod


class Estimator(ips.Estimator):
    """IPS with weights clipped at ``clip``; other parameters as :class:`.ips.Estimator`.

    Parameters
    ----------
    clip
        The cap ``M > 0`` on importance weights.
    """

    interval_methods: ClassVar[frozenset[IntervalMethod]] = frozenset({"gaussian", "bernstein"})

    def __init__(
        self,
        clip: float,
        *,
        reward_range: tuple[float, float] | None = None,
        max_weight: float | None = None,
    ) -> None:
        super().__init__(reward_range=reward_range, max_weight=max_weight)
        self._clip = check.bounded_below("clip", clip, 0.0)

    @property
    def clip(self) -> float:
        return self._clip

    def _transform(self, w: FloatArray) -> FloatArray:
        return np.minimum(w, self._clip)

    def _weight_cap(self) -> float:
        return self._clip

    def _config(self) -> dict[str, object]:
        return {**super()._config(), "clip": self._clip}
