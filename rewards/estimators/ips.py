r"""Inverse propensity scoring (IPS): the Horvitz-Thompson estimator of a target policy's value.

For ``n`` logged events with logged propensity ``p_log`` of the chosen action, its reward ``r``
and the target policy's probability ``p_target`` of that same action,

    V̂_IPS = (1/n) Σ_i w_i r_i,        w_i = p_target_i / p_log_i,

unbiased when the logging policy gives every action the target may choose a positive
probability. Its variance grows with the spread of the weights, which :attr:`Estimator.weights`
reports.

This module also defines the IPS *family* (:mod:`.clipped_ips`, :mod:`.snips`): one statistics
matrix over ``(v, r)`` where ``v = _transform(w)`` is the weight that enters the estimate.

Reference: D. G. Horvitz & D. J. Thompson (1952), "A generalization of sampling without
replacement from a finite universe", JASA 47(260).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from rewards.estimators import base, cressie_read
from rewards.estimators._validation import FloatArray
from rewards.estimators.results import Interval, IntervalMethod

# Rows of the statistics matrix after the raw weight rows (base.W, base.W2).
V, V2, VR, V2R, V2R2 = 2, 3, 4, 5, 6


class Estimator(base.Estimator):
    """Streaming, mergeable IPS.

    Parameters
    ----------
    reward_range, max_weight
        See :class:`rewards.estimators.base.Estimator`.

    Examples
    --------
    >>> est = Estimator()
    >>> est.add(p_log=0.5, reward=1.0, p_target=1.0)
    >>> est.get()
    2.0
    """

    inputs: ClassVar[tuple[str, ...]] = ("p_log", "reward", "p_target")
    interval_methods: ClassVar[frozenset[IntervalMethod]] = frozenset(
        {"gaussian", "bernstein", "cressie_read"}
    )
    _n_columns: ClassVar[int] = 7

    def add(self, p_log: float, reward: float, p_target: float) -> None:
        """Add one logged event.

        Parameters
        ----------
        p_log
            Logged propensity of the chosen action, in (0, 1].
        reward
            Observed reward (within ``reward_range`` when set).
        p_target
            Target policy's probability of the logged chosen action, in [0, 1].
        """
        pl, pt = self._check_probabilities(p_log, p_target)
        r = self._check_reward("reward", reward)
        self._fold(self._columns(np.array([pl]), np.array([r]), np.array([pt])), event=True)

    def add_arrays(
        self, p_log: npt.ArrayLike, reward: npt.ArrayLike, p_target: npt.ArrayLike
    ) -> None:
        """Add a batch of events; equals calling :meth:`add` on each (to ~1e-15 relative).

        Parameters
        ----------
        p_log, reward, p_target
            Shape ``(n,)`` each, as in :meth:`add`.
        """
        self._fold(self._batch_columns((p_log, reward, p_target)))

    # -- hooks ----------------------------------------------------------------------------

    def _transform(self, w: FloatArray) -> FloatArray:
        """The weight that enters the estimate, shape ``(n,)`` to ``(n,)``; identity for IPS.

        Contract for overrides: ``0 <= _transform(w) <= w`` and bounded by :meth:`_weight_cap`.
        """
        return w

    def _value(self, sums: FloatArray, n: int) -> FloatArray:
        return np.asarray(sums[..., VR] / n)

    def _variance(self, sums: FloatArray, n: int) -> float:
        return base.mean_variance(sums[VR], sums[V2R2], n)

    # -- family machinery -------------------------------------------------------------------

    def _batch_columns(self, arrays: Sequence[npt.ArrayLike]) -> FloatArray:
        p_log, reward, p_target = arrays
        pl, pt = self._probability_columns(p_log, p_target)
        return self._columns(pl, self._reward_column("reward", reward, like=pl), pt)

    def _columns(self, p_log: FloatArray, reward: FloatArray, p_target: FloatArray) -> FloatArray:
        """Per-event statistics, shape ``(7, n)``: ``w, w², v, v², vr, v²r, v²r²``."""
        # Rows are written in place: on large batches, fresh temporaries cost more (page faults)
        # than the arithmetic. Overflow (absurdly small p_log) is reported by _check_weights.
        out = np.empty((self._n_columns, p_log.shape[0]))
        with np.errstate(over="ignore", invalid="ignore"):
            w = np.divide(p_target, p_log, out=out[base.W])
            np.multiply(w, w, out=out[base.W2])
            v = out[V]
            v[:] = self._transform(w)
            np.multiply(v, v, out=out[V2])
            vr = np.multiply(v, reward, out=out[VR])
            np.multiply(v, vr, out=out[V2R])
            np.multiply(vr, vr, out=out[V2R2])
        return out

    def _term_moments(self, sums: FloatArray) -> tuple[float, float]:
        return float(sums[VR]), float(sums[V2R2])

    def _term_range(
        self, weight_cap: float, reward_range: tuple[float, float]
    ) -> tuple[float, float]:
        r_min, r_max = reward_range
        return min(0.0, weight_cap * r_min), max(0.0, weight_cap * r_max)

    def _estimand_range(self, reward_range: tuple[float, float]) -> tuple[float, float]:
        # E[v r] = Σ_a π(a) c_a μ(a) with c_a = v/w in [0, 1]: a sub-convex combination of rewards.
        r_min, r_max = reward_range
        return min(0.0, r_min), max(0.0, r_max)

    def _cressie_read(self, alpha: float) -> Interval:
        s = self.totals()
        return cressie_read.interval(
            n=self._n,
            sum_w=float(s[V]),
            sum_w2=float(s[V2]),
            sum_wr=float(s[VR]),
            sum_w2r=float(s[V2R]),
            sum_w2r2=float(s[V2R2]),
            reward_range=self._require_reward_range("cressie_read"),
            weight_range=(0.0, math.inf if self._max_weight is None else self._max_weight),
            alpha=alpha,
        )
