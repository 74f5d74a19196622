r"""Doubly robust (DR) estimation: a reward model corrected by importance-weighted residuals.

For each logged event, with ``r̂`` the reward model's prediction for the logged action and
``v̂ = Σ_a π_target(a|x) r̂(x, a)`` the model's value of the target policy at the context,

    V̂_DR = (1/n) Σ_i [ v̂_i + w_i (r_i - r̂_i) ],        w_i = p_target_i / p_log_i.

It is unbiased when the propensities are right (whatever the model) and has low variance when
the model is good: the weights only multiply the model's residuals.

This module also defines the DR *family* (:mod:`.dm`, :mod:`.switch_dr`, :mod:`.dr_os`,
:mod:`.sndr`): the per-event term is ``t = v̂ + v (r - r̂)`` with ``v = _transform(w)``.

Reference: M. Dudík, J. Langford & L. Li (2011), "Doubly robust policy evaluation and learning",
ICML.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from rewards.estimators import base
from rewards.estimators._validation import FloatArray
from rewards.estimators.results import IntervalMethod

# Rows of the statistics matrix after the raw weight rows (base.W, base.W2).
T, T2 = 2, 3


class Estimator(base.Estimator):
    """Streaming, mergeable DR.

    Parameters
    ----------
    reward_range, max_weight
        See :class:`rewards.estimators.base.Estimator`. With ``reward_range`` set, ``r_hat`` and
        ``v_hat`` must lie in it too.

    Examples
    --------
    >>> est = Estimator()
    >>> est.add(p_log=0.5, reward=1.0, p_target=1.0, r_hat=0.5, v_hat=0.5)
    >>> est.get()
    1.5
    """

    inputs: ClassVar[tuple[str, ...]] = ("p_log", "reward", "p_target", "r_hat", "v_hat")
    interval_methods: ClassVar[frozenset[IntervalMethod]] = frozenset({"gaussian", "bernstein"})
    _n_columns: ClassVar[int] = 4

    def add(self, p_log: float, reward: float, p_target: float, r_hat: float, v_hat: float) -> None:
        """Add one logged event.

        Parameters
        ----------
        p_log
            Logged propensity of the chosen action, in (0, 1].
        reward
            Observed reward.
        p_target
            Target policy's probability of the logged chosen action, in [0, 1].
        r_hat
            Reward model's prediction for the logged chosen action.
        v_hat
            Reward model's value of the target policy at this context,
            ``Σ_a π_target(a|x) · r̂(x, a)``.
        """
        pl, pt = self._check_probabilities(p_log, p_target)
        r = self._check_reward("reward", reward)
        rh = self._check_reward("r_hat", r_hat)
        vh = self._check_reward("v_hat", v_hat)
        arrays = (np.array([pl]), np.array([r]), np.array([pt]), np.array([rh]), np.array([vh]))
        self._fold(self._columns(*arrays), event=True)

    def add_arrays(
        self,
        p_log: npt.ArrayLike,
        reward: npt.ArrayLike,
        p_target: npt.ArrayLike,
        r_hat: npt.ArrayLike,
        v_hat: npt.ArrayLike,
    ) -> None:
        """Add a batch of events; equals calling :meth:`add` on each (to ~1e-15 relative).

        Parameters
        ----------
        p_log, reward, p_target, r_hat, v_hat
            Shape ``(n,)`` each, as in :meth:`add`.
        """
        self._fold(self._batch_columns((p_log, reward, p_target, r_hat, v_hat)))

    # -- hooks ----------------------------------------------------------------------------

    def _transform(self, w: FloatArray) -> FloatArray:
        """The weight on the residual, shape ``(n,)`` to ``(n,)``; identity for DR.

        Contract for overrides: ``0 <= _transform(w) <= w`` and bounded by :meth:`_weight_cap`.
        """
        return w

    def _columns(
        self,
        p_log: FloatArray,
        reward: FloatArray,
        p_target: FloatArray,
        r_hat: FloatArray,
        v_hat: FloatArray,
    ) -> FloatArray:
        """Per-event statistics, shape ``(4, n)``: ``w, w², t, t²``."""
        # Rows are written in place: on large batches, fresh temporaries cost more (page faults)
        # than the arithmetic. Overflow (absurdly small p_log) is reported by _check_weights.
        out = np.empty((self._n_columns, p_log.shape[0]))
        with np.errstate(over="ignore", invalid="ignore"):
            w = np.divide(p_target, p_log, out=out[base.W])
            np.multiply(w, w, out=out[base.W2])
            t = np.subtract(reward, r_hat, out=out[T])
            t *= self._transform(w)
            t += v_hat
            np.multiply(t, t, out=out[T2])
        return out

    def _value(self, sums: FloatArray, n: int) -> FloatArray:
        return np.asarray(sums[..., T] / n)

    def _variance(self, sums: FloatArray, n: int) -> float:
        return base.mean_variance(sums[T], sums[T2], n)

    # -- family machinery -------------------------------------------------------------------

    def _batch_columns(self, arrays: Sequence[npt.ArrayLike]) -> FloatArray:
        p_log, reward, p_target, r_hat, v_hat = arrays
        pl, pt = self._probability_columns(p_log, p_target)
        return self._columns(
            pl,
            self._reward_column("reward", reward, like=pl),
            pt,
            self._reward_column("r_hat", r_hat, like=pl),
            self._reward_column("v_hat", v_hat, like=pl),
        )

    def _term_moments(self, sums: FloatArray) -> tuple[float, float]:
        return float(sums[T]), float(sums[T2])

    def _term_range(
        self, weight_cap: float, reward_range: tuple[float, float]
    ) -> tuple[float, float]:
        r_min, r_max = reward_range
        span = r_max - r_min
        # v̂ in [r_min, r_max] and |r - r̂| <= span.
        return r_min - weight_cap * span, r_max + weight_cap * span

    def _estimand_range(self, reward_range: tuple[float, float]) -> tuple[float, float]:
        # With 0 <= v <= w, E[t] = E_x Σ_a π(a) [(1 - c_a) r̂ + c_a μ], c_a = v/w: a convex mix.
        return reward_range
