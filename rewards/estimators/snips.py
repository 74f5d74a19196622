r"""Self-normalized IPS (SNIPS): IPS divided by the mean importance weight.

    V̂_SNIPS = Σ_i w_i r_i / Σ_i w_i

Since ``E[w] = 1``, the denominator's expectation is ``n``; dividing by the realized sum removes the
variance that comes from the weights alone, at a bias of order ``1/n``. The estimate always lies
within the observed reward range. Its Gaussian interval uses the delta method with the influence
function ``φ_i = w_i (r_i - V̂) / w̄``; the Cressie-Read interval applies as for IPS (it bounds the
value itself, whatever the point estimator).

Reference: A. Swaminathan & T. Joachims (2015), "The self-normalized estimator for
counterfactual learning", NeurIPS.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from rewards.estimators import ips
from rewards.estimators._validation import FloatArray
from rewards.estimators.ips import V2, V2R, V2R2, VR, V
from rewards.estimators.results import IntervalMethod


class Estimator(ips.Estimator):
    """Streaming, mergeable SNIPS; parameters as :class:`.ips.Estimator`.

    ``get()`` is ``nan`` while every weight is 0 (the target never agreed with the log).
    """

    interval_methods: ClassVar[frozenset[IntervalMethod]] = frozenset({"gaussian", "cressie_read"})

    def _value(self, sums: FloatArray, n: int) -> FloatArray:
        sum_v = sums[..., V]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(sum_v > 0.0, sums[..., VR] / sum_v, np.nan)

    def _variance(self, sums: FloatArray, n: int) -> float:
        sum_v = float(sums[V])
        if n < 2 or sum_v <= 0.0:
            return float("nan")
        value = float(sums[VR]) / sum_v
        # Σ (v (r - V̂))² expanded into the kept sums.
        residual = float(sums[V2R2]) - 2.0 * value * float(sums[V2R]) + value**2 * float(sums[V2])
        mean_v2 = (sum_v / n) ** 2
        if mean_v2 == 0.0:  # weights so small their square underflows: no usable scale
            return float("nan")
        return max(residual, 0.0) / mean_v2 / (n - 1) / n
