"""The streaming, mergeable state every estimator shares.

An estimator is a function of column sums of a per-event statistics matrix of shape ``(k, n)``.
The first two rows are always the raw importance weight ``w = p_target / p_log`` and ``w²``
(for the weight diagnostics); the rest are the estimator's own. Keeping only those sums (exactly,
see :mod:`rewards.estimators._exact`), the event count and the extreme weights is what makes
``add`` per event, ``add_arrays`` per batch and ``a + b`` across shards all give the same answer.

Subclasses supply the statistics (``_columns``, in the family modules :mod:`ips` and :mod:`dr`),
the point estimate ``_value`` and its variance ``_variance`` as functions of the sums, and declare
which intervals are valid for them in ``interval_methods``.
"""

from __future__ import annotations

import copy
import math
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from typing import ClassVar, Self

import numpy as np
import numpy.typing as npt

from rewards.estimators import _validation as check
from rewards.estimators import bernstein, bootstrap, gaussian
from rewards.estimators._exact import ExactSum
from rewards.estimators._validation import FloatArray
from rewards.estimators.results import Estimate, Interval, IntervalMethod, WeightSummary

W, W2 = 0, 1
"""Rows of the raw importance weight and its square in every statistics matrix."""

# Allows max_weight = 1 / p_min to pass when p_target / p_log rounds one ulp above it.
_WEIGHT_SLACK = 1e-12


def mean_variance(sum_t: FloatArray | float, sum_t2: FloatArray | float, n: int) -> float:
    """Variance of the sample mean of ``n`` terms from ``Σt`` and ``Σt²`` (``nan`` if ``n < 2``)."""
    if n < 2:
        return math.nan
    s, s2 = float(sum_t), float(sum_t2)
    return max(s2 - s * s / n, 0.0) / (n - 1) / n


class Estimator(ABC):
    """Base class of all off-policy estimators.

    The family classes (:class:`.ips.Estimator`, :class:`.dr.Estimator`) add the per-event
    ``add(...)`` and the positional ``add_arrays(...)``; everything else is shared:

    * ``add_batch(batch)`` — arrays by input name (:attr:`inputs`)
    * ``get()`` — the point estimate; ``n``; ``weights`` — ESS and weight extremes
    * ``interval(alpha, method)`` / ``estimate(alpha, method)`` — streaming intervals
    * ``bootstrap_interval(batch, ...)`` — percentile bootstrap over a batch of events
    * ``a + b`` — merge estimators of disjoint shards (same class and settings)

    Parameters
    ----------
    reward_range
        ``(r_min, r_max)`` known a priori. Required by the ``"bernstein"`` and ``"cressie_read"``
        intervals; when given, every reward (and reward-model output) is checked against it.
    max_weight
        The largest importance weight ``p_target / p_log`` the logging and target policies can
        produce, e.g. ``1 / min_propensity`` (``K / epsilon`` for epsilon-greedy over ``K``
        actions). Required by ``"bernstein"`` when the estimator's own weights are unbounded;
        tightens ``"cressie_read"``. When given, every event is checked against it.
    """

    inputs: ClassVar[tuple[str, ...]]
    """Names of the per-event inputs of ``add`` / ``add_arrays``, in order."""

    interval_methods: ClassVar[frozenset[IntervalMethod]] = frozenset({"gaussian"})
    """The interval kinds :meth:`interval` accepts for this estimator."""

    _n_columns: ClassVar[int]

    def __init__(
        self,
        *,
        reward_range: tuple[float, float] | None = None,
        max_weight: float | None = None,
    ) -> None:
        self._reward_range = check.reward_range(reward_range)
        self._max_weight = (
            None
            if max_weight is None
            else check.bounded_below("max_weight", max_weight, 1.0, inclusive=True)
        )
        self._n = 0
        self._sums = [ExactSum() for _ in range(self._n_columns)]
        self._w_min = math.inf
        self._w_max = -math.inf

    # -- hooks -------------------------------------------------------------------------------

    @abstractmethod
    def _value(self, sums: FloatArray, n: int) -> FloatArray:
        """The point estimate from column sums.

        Parameters
        ----------
        sums
            Shape ``(..., k)``: vectorized over leading axes for the bootstrap.
        n
            Number of events behind the sums, ``>= 1``.

        Returns
        -------
        numpy.ndarray
            Shape ``(...)``.
        """

    @abstractmethod
    def _variance(self, sums: FloatArray, n: int) -> float:
        """Variance of the point estimate from ``sums`` of shape ``(k,)``; ``nan`` if unknown."""

    def _weight_cap(self) -> float:
        """An upper bound on the weights that enter the estimate, whatever the data."""
        return math.inf

    def _config(self) -> dict[str, object]:
        """Settings two estimators must share to be merged, by constructor argument name."""
        return {"reward_range": self._reward_range, "max_weight": self._max_weight}

    @abstractmethod
    def _batch_columns(self, arrays: Sequence[npt.ArrayLike]) -> FloatArray:
        """Validate one array per name in :attr:`inputs` and return the ``(k, n)`` statistics."""

    def _term_moments(self, sums: FloatArray) -> tuple[float, float]:
        """``(Σt, Σt²)`` of the per-event term, for estimators that are a mean of terms."""
        raise NotImplementedError

    def _term_range(
        self, weight_cap: float, reward_range: tuple[float, float]
    ) -> tuple[float, float]:
        """A-priori range of one term given the largest weight and the reward range."""
        raise NotImplementedError

    def _estimand_range(self, reward_range: tuple[float, float]) -> tuple[float, float]:
        """A range certain to contain the expectation of the estimate."""
        raise NotImplementedError

    def _cressie_read(self, alpha: float) -> Interval:
        raise NotImplementedError

    # -- public API ----------------------------------------------------------------------------

    @property
    def n(self) -> int:
        """Number of events added."""
        return self._n

    @property
    def reward_range(self) -> tuple[float, float] | None:
        return self._reward_range

    @property
    def max_weight(self) -> float | None:
        return self._max_weight

    def totals(self) -> FloatArray:
        """The column sums, shape ``(k,)``, each correctly rounded from its exact value."""
        return np.array([s.value() for s in self._sums])

    def get(self) -> float:
        """The point estimate of the target policy's value (``nan`` before any event)."""
        if self._n == 0:
            return math.nan
        return float(self._value(self.totals(), self._n))

    @property
    def weights(self) -> WeightSummary:
        """Importance-weight diagnostics (ESS, extremes, mean) of the events added."""
        return WeightSummary.from_sums(
            n=self._n,
            sum_w=self._sums[W].value(),
            sum_w2=self._sums[W2].value(),
            w_min=self._w_min,
            w_max=self._w_max,
        )

    def interval(self, alpha: float = 0.05, method: IntervalMethod = "gaussian") -> Interval:
        """A ``1 - alpha`` confidence interval for the target policy's value.

        Parameters
        ----------
        alpha
            Miscoverage level, in (0, 1).
        method
            One of :attr:`interval_methods`:

            ``"gaussian"``
                CLT / delta method (:mod:`.gaussian`); asymptotic. ``(-inf, inf)`` below 2 events.
            ``"bernstein"``
                Empirical Bernstein (:mod:`.bernstein`); finite-sample, needs ``reward_range``
                and a bounded weight (``max_weight``, or the estimator's own cap).
            ``"cressie_read"``
                χ² empirical likelihood (:mod:`.cressie_read`); needs ``reward_range``.

        For the biased variants (clipped IPS, Switch-DR, DR-OS, DM) the interval covers the
        expectation of the estimate, not necessarily the policy's value.
        """
        a = check.alpha(alpha)
        if method not in self.interval_methods:
            allowed = ", ".join(repr(m) for m in sorted(self.interval_methods))
            raise ValueError(
                f"`method` must be one of {allowed} for {self._name()} (got {method!r})"
            )
        if method == "gaussian":
            if self._n < 2:
                return Interval(-math.inf, math.inf)
            return gaussian.interval(self.get(), self._variance(self.totals(), self._n), a)
        if method == "bernstein":
            return self._bernstein(a)
        return self._cressie_read(a)

    def add_batch(self, batch: Mapping[str, npt.ArrayLike]) -> None:
        """Add a batch given as arrays by input name, e.g. ``{"p_log": ..., "reward": ...}``.

        Parameters
        ----------
        batch
            One array of shape ``(n,)`` per name in :attr:`inputs`; other keys are ignored, so
            one batch of log columns can feed estimators of both families.
        """
        self._fold(self._batch_columns(self._pick(batch)))

    def bootstrap_interval(
        self,
        batch: Mapping[str, npt.ArrayLike],
        *,
        alpha: float = 0.05,
        n_resamples: int = 200,
        rng: np.random.Generator | int = 0,
    ) -> Interval:
        """Percentile-bootstrap interval of this estimator over the events of ``batch``.

        A bootstrap resamples events, so they are passed here (as in :meth:`add_batch`); the
        accumulated state is not read, only the estimator's settings. See :mod:`.bootstrap`.

        Parameters
        ----------
        batch
            One array of shape ``(n,)`` per name in :attr:`inputs`.
        alpha
            Miscoverage level, in (0, 1).
        n_resamples
            Number of resamples.
        rng
            A numpy ``Generator`` or an integer seed; a seed makes the interval reproducible.
        """
        columns = self._batch_columns(self._pick(batch))
        self._check_weights(columns, event=False)
        return bootstrap.interval(
            columns, self._value, alpha=alpha, n_resamples=n_resamples, rng=rng
        )

    def estimate(self, alpha: float = 0.05, method: IntervalMethod = "gaussian") -> Estimate:
        """Point estimate, interval (see :meth:`interval`) and weight diagnostics in one record."""
        ci = self.interval(alpha, method)
        return Estimate(
            value=self.get(), ci=ci, n=self._n, alpha=alpha, method=method, weights=self.weights
        )

    def __add__(self, other: Self) -> Self:
        """Merge two estimators built over disjoint shards; the operands are left unchanged.

        Sums are held exactly, so the merge itself loses nothing: shards built with ``add`` merge
        to the union's estimator bit for bit, in any order and grouping. A batch added with
        ``add_arrays`` enters as numpy's pairwise sum of the batch (relative error ~1e-16).
        """
        if type(other) is not type(self):
            raise TypeError(f"cannot merge {self._name()} with {other._name()}")
        mine, theirs = self._config(), other._config()
        if mine != theirs:
            diff = ", ".join(
                f"`{k}` {mine[k]} vs {theirs[k]}" for k in mine if mine[k] != theirs[k]
            )
            raise ValueError(
                f"cannot merge {self._name()} estimators with different settings ({diff})"
            )
        result = copy.deepcopy(self)
        result._n += other._n
        result._sums = [a.merged(b) for a, b in zip(self._sums, other._sums, strict=True)]
        result._w_min = min(self._w_min, other._w_min)
        result._w_max = max(self._w_max, other._w_max)
        return result

    def __repr__(self) -> str:
        return f"<{self._name()} estimator n={self._n} value={self.get():.6g}>"

    # -- shared machinery ------------------------------------------------------------------

    @classmethod
    def _name(cls) -> str:
        return cls.__module__.rsplit(".", 1)[-1]

    def _pick(self, batch: Mapping[str, npt.ArrayLike]) -> tuple[npt.ArrayLike, ...]:
        missing = [name for name in self.inputs if name not in batch]
        if missing:
            raise ValueError(
                f"`batch` must hold {', '.join(self.inputs)} for {self._name()} "
                f"(missing {', '.join(missing)})"
            )
        return tuple(batch[name] for name in self.inputs)

    def _check_probabilities(self, p_log: float, p_target: float) -> tuple[float, float]:
        pl = check.real("p_log", p_log)
        check.probability_range("p_log", pl, open_low=True)
        pt = check.real("p_target", p_target)
        check.probability_range("p_target", pt, open_low=False)
        return pl, pt

    def _check_reward(self, name: str, value: float) -> float:
        x = check.real(name, value)
        if self._reward_range is not None:
            low, high = self._reward_range
            if not low <= x <= high:
                bounds = f"[{check.fmt(low)}, {check.fmt(high)}]"
                raise ValueError(f"`{name}` must be in {bounds} (got {check.fmt(x)})")
        return x

    def _probability_columns(
        self, p_log: npt.ArrayLike, p_target: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        pl = check.column("p_log", p_log)
        check.in_interval("p_log", pl, 0.0, 1.0, open_low=True)
        pt = check.column("p_target", p_target, like=pl)
        check.in_interval("p_target", pt, 0.0, 1.0)
        return pl, pt

    def _reward_column(self, name: str, values: npt.ArrayLike, like: FloatArray) -> FloatArray:
        r = check.column(name, values, like=like)
        if self._reward_range is not None:
            check.in_interval(name, r, *self._reward_range)
        return r

    def _fold(self, columns: FloatArray, *, event: bool = False) -> None:
        """Add a ``(k, m)`` statistics matrix to the state; ``event`` marks a single :meth:`add`."""
        m = columns.shape[1]
        if m == 0:
            return
        if event:
            row = columns[:, 0].tolist()
            # Plain-float checks: numpy reductions on one element cost more than the sums.
            if not all(map(math.isfinite, row)) or (
                self._max_weight is not None and row[W] > self._max_weight * (1.0 + _WEIGHT_SLACK)
            ):
                self._check_weights(columns, event=True)
            w_min = w_max = row[W]
        else:
            self._check_weights(columns, event=False)
            # Row-wise sums of a C-ordered matrix use numpy's pairwise summation (error ~ε·log m).
            row = columns.sum(axis=1).tolist()
            w_min, w_max = float(columns[W].min()), float(columns[W].max())
        for total, x in zip(self._sums, row, strict=True):
            total.add(x)
        self._n += m
        self._w_min = min(self._w_min, w_min)
        self._w_max = max(self._w_max, w_max)

    def _check_weights(self, columns: FloatArray, *, event: bool) -> None:
        w = columns[W]
        finite = np.isfinite(columns).all(axis=0)
        if not finite.all():
            i = int(np.flatnonzero(~finite)[0])
            where = "" if event else f" at index {i}"
            raise ValueError(
                f"importance weight `p_target / p_log` or reward too large to square "
                f"(got w = {check.fmt(w[i])}{where})"
            )
        if self._max_weight is not None:
            over = w > self._max_weight * (1.0 + _WEIGHT_SLACK)
            if over.any():
                i = int(np.flatnonzero(over)[0])
                where = "" if event else f" at index {i}"
                raise ValueError(
                    f"importance weight `p_target / p_log` must be <= `max_weight` "
                    f"{check.fmt(self._max_weight)} (got {check.fmt(w[i])}{where})"
                )

    def _require_reward_range(self, method: str) -> tuple[float, float]:
        if self._reward_range is None:
            raise ValueError(f"`reward_range` must be set for a {method} interval")
        return self._reward_range

    def _bernstein(self, alpha: float) -> Interval:
        reward_range = self._require_reward_range("bernstein")
        cap = min(self._weight_cap(), math.inf if self._max_weight is None else self._max_weight)
        if math.isinf(cap):
            raise ValueError(
                f"`max_weight` must be set for a bernstein interval: {self._name()} weights "
                f"are otherwise unbounded"
            )
        n = self._n
        estimand = self._estimand_range(reward_range)
        if n < 2:
            return Interval(*estimand)
        sum_t, sum_t2 = self._term_moments(self.totals())
        variance = max(sum_t2 - sum_t * sum_t / n, 0.0) / (n - 1)
        return bernstein.interval(
            sum_t / n,
            variance,
            n,
            term_range=self._term_range(cap, reward_range),
            alpha=alpha,
            clip=estimand,
        )
