r"""Self-normalized doubly robust (SNDR): DR whose residual correction is self-normalized.

    V̂_SNDR = (1/n) Σ_i v̂_i + Σ_i w_i (r_i - r̂_i) / Σ_i w_i

As SNIPS does for IPS, dividing by the realized weight sum instead of ``n`` removes the variance
due to the weights alone and keeps the correction within the residuals' range, at an ``O(1/n)``
bias. The Gaussian interval uses the delta method with influence function

    φ_i = (v̂_i - mean(v̂)) + w_i (δ_i - D) / w̄,        δ = r - r̂,   D = Σwδ / Σw,

expanded into eleven running sums so the estimator still streams and merges. While every weight
is 0 there is nothing to correct with and the estimate is the direct method's.

Reference: N. Kallus & M. Uehara (2019), "Intrinsically efficient, stable, and bounded
off-policy evaluation for reinforcement learning", NeurIPS (SNDR as in Open Bandit Pipeline's
``SelfNormalizedDoublyRobust``).
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from rewards.estimators import base, dr
from rewards.estimators._validation import FloatArray
from rewards.estimators.results import IntervalMethod

# Rows after the raw weight rows: v̂, v̂², v, v², vδ, v²δ, v²δ², v̂v, v̂vδ (v the residual weight).
Q, Q2, V, V2, VD, V2D, V2D2, QV, QVD = range(2, 11)


class Estimator(dr.Estimator):
    """Streaming, mergeable SNDR; same inputs and parameters as :class:`.dr.Estimator`."""

    interval_methods: ClassVar[frozenset[IntervalMethod]] = frozenset({"gaussian"})
    _n_columns: ClassVar[int] = 11

    def _columns(
        self,
        p_log: FloatArray,
        reward: FloatArray,
        p_target: FloatArray,
        r_hat: FloatArray,
        v_hat: FloatArray,
    ) -> FloatArray:
        """Per-event statistics, shape ``(11, n)``."""
        # Rows are written in place, as in dr.Estimator._columns.
        out = np.empty((self._n_columns, p_log.shape[0]))
        with np.errstate(over="ignore", invalid="ignore"):
            w = np.divide(p_target, p_log, out=out[base.W])
            np.multiply(w, w, out=out[base.W2])
            out[Q] = v_hat
            np.multiply(v_hat, v_hat, out=out[Q2])
            v = out[V]
            v[:] = self._transform(w)
            np.multiply(v, v, out=out[V2])
            vd = np.subtract(reward, r_hat, out=out[VD])
            vd *= v
            np.multiply(v, vd, out=out[V2D])
            np.multiply(vd, vd, out=out[V2D2])
            np.multiply(v_hat, v, out=out[QV])
            np.multiply(v_hat, vd, out=out[QVD])
        return out

    def _value(self, sums: FloatArray, n: int) -> FloatArray:
        sum_v = sums[..., V]
        with np.errstate(divide="ignore", invalid="ignore"):
            correction = np.where(sum_v > 0.0, sums[..., VD] / sum_v, 0.0)
        return np.asarray(sums[..., Q] / n + correction)

    def _variance(self, sums: FloatArray, n: int) -> float:
        if n < 2:
            return float("nan")
        s = [float(x) for x in sums]
        mean_q = s[Q] / n
        spread_q = s[Q2] - n * mean_q * mean_q
        if s[V] <= 0.0:
            return max(spread_q, 0.0) / (n - 1) / n
        d = s[VD] / s[V]
        mean_v = s[V] / n
        if mean_v * mean_v == 0.0:  # weights so small their square underflows: no usable scale
            return float("nan")
        # Σ(v̂ - m)(vδ - D v) = Σv̂vδ - D Σv̂v, because Σ(vδ - D v) = 0.
        cross = s[QVD] - d * s[QV]
        spread_c = s[V2D2] - 2.0 * d * s[V2D] + d * d * s[V2]
        total = spread_q + 2.0 * cross / mean_v + spread_c / (mean_v * mean_v)
        return max(total, 0.0) / (n - 1) / n
