"""Sufficient statistics: the few numbers a SQL ``GROUP BY arm`` hands to the statistics.

Every test in :mod:`experiments.stats` needs only the count, sum and sum of squares of a metric
per arm (:class:`Moments`), or, for CUPED, those of a metric and a covariate plus their cross
product (:class:`JointMoments`). A database aggregates a million decisions into these with
``COUNT(*), SUM(y), SUM(y * y)``; shards merge with ``+``; numpy builds them with
:meth:`Moments.by_group` (one ``np.bincount`` pass per sum).

The unit of analysis should be the unit of randomization. Assignment is per unit (person), so a
per-decision metric whose decisions cluster within units has a larger variance than the i.i.d.
formula assumes; aggregate decisions to one value per unit first (e.g. mean reward per person)
and put those per-unit values into the moments.

Variances are computed as ``(sum_sq - sum**2 / n) / (n - 1)``. In float64 this loses precision
only when ``|mean|`` is many orders of magnitude above the standard deviation; for such metrics,
subtract a constant before aggregating (a shift changes no difference, variance or test).
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt

from experiments.stats import _checks

__all__ = ["JointMoments", "Moments"]

# Rounding lets sum**2 exceed n * sum_sq by a few ulps when every value is equal.
_RELATIVE_SLACK = 1e-9


@dataclass(frozen=True, slots=True)
class Moments:
    """Count, sum and sum of squares of one metric in one arm.

    Attributes
    ----------
    n : int
        Number of observations (units, if the metric is per unit).
    sum : float
        Sum of the values.
    sum_sq : float
        Sum of the squared values.
    """

    n: int
    sum: float
    sum_sq: float

    def __post_init__(self) -> None:
        n = _checks.count(self.n, "n")
        total = _checks.finite(self.sum, "sum")
        total_sq = _checks.finite(self.sum_sq, "sum_sq")
        if total_sq < 0:
            raise ValueError(f"`sum_sq` must be non-negative (got {total_sq})")
        if n == 0 and (total != 0 or total_sq != 0):
            raise ValueError(
                f"`sum` and `sum_sq` must be 0 when `n` is 0 (got {total}, {total_sq})"
            )
        # Cauchy–Schwarz: sum**2 <= n * sum_sq. A violation means the caller aggregated something
        # else (e.g. summed squared *means*), which would otherwise surface as a negative variance.
        # The absolute term forgives squares of tiny values that underflowed to subnormals.
        if n > 0 and total * total > n * total_sq * (1 + _RELATIVE_SLACK) + sys.float_info.min:
            raise ValueError(
                f"`sum_sq` must be at least sum**2 / n (got sum_sq={total_sq}, sum={total}, n={n})"
            )
        object.__setattr__(self, "n", n)
        object.__setattr__(self, "sum", total)
        object.__setattr__(self, "sum_sq", total_sq)

    @classmethod
    def from_values(cls, values: npt.ArrayLike) -> Self:
        """Moments of a 1-D array of observations."""
        array = np.asarray(values, dtype=np.float64)
        if array.ndim != 1:
            raise ValueError(f"`values` must be 1-D (got shape {array.shape})")
        return cls(int(array.size), float(array.sum()), float(np.dot(array, array)))

    @classmethod
    def bernoulli(cls, n: int, successes: int) -> Self:
        """Moments of ``n`` 0/1 observations of which ``successes`` are 1 (a rate or proportion)."""
        n = _checks.count(n, "n")
        successes = _checks.count(successes, "successes")
        if successes > n:
            raise ValueError(f"`successes` must be at most `n` ({n}) (got {successes})")
        # For 0/1 values x**2 == x, so the sum of squares equals the number of successes.
        return cls(n, float(successes), float(successes))

    @classmethod
    def by_group(
        cls, groups: npt.ArrayLike, values: npt.ArrayLike, n_groups: int
    ) -> tuple[Self, ...]:
        """Moments of ``values`` split by integer group labels, in one pass per statistic.

        Parameters
        ----------
        groups : array_like of int, shape (n,)
            Group label (e.g. arm index) of each observation, in ``[0, n_groups)``.
        values : array_like of float, shape (n,)
            The observations.
        n_groups : int
            Number of groups; groups without observations get ``Moments(0, 0, 0)``.

        Returns
        -------
        tuple of Moments, length n_groups
        """
        labels, array = _grouped(groups, values, n_groups)
        counts = np.bincount(labels, minlength=n_groups)
        sums = np.bincount(labels, weights=array, minlength=n_groups)
        sums_sq = np.bincount(labels, weights=array * array, minlength=n_groups)
        return tuple(
            cls(int(c), float(s), float(q)) for c, s, q in zip(counts, sums, sums_sq, strict=True)
        )

    def __add__(self, other: Moments) -> Moments:
        """Moments of the union of the two samples (e.g. two shards or two days)."""
        if not isinstance(other, Moments):
            return NotImplemented
        return Moments(self.n + other.n, self.sum + other.sum, self.sum_sq + other.sum_sq)

    @property
    def mean(self) -> float:
        """Sample mean; needs ``n >= 1``."""
        if self.n < 1:
            raise ValueError("`n` must be at least 1 for a mean (got 0)")
        return self.sum / self.n

    @property
    def variance(self) -> float:
        """Unbiased sample variance (denominator ``n - 1``); needs ``n >= 2``."""
        if self.n < 2:
            raise ValueError(f"`n` must be at least 2 for a variance (got {self.n})")
        return max(self.sum_sq - self.sum * self.sum / self.n, 0.0) / (self.n - 1)

    @property
    def std(self) -> float:
        """Sample standard deviation (denominator ``n - 1``); needs ``n >= 2``."""
        return math.sqrt(self.variance)

    @property
    def standard_error(self) -> float:
        """Standard error of the mean, ``std / sqrt(n)``; needs ``n >= 2``."""
        return math.sqrt(self.variance / self.n)


@dataclass(frozen=True, slots=True)
class JointMoments:
    """Sufficient statistics of a metric ``y`` and a covariate ``x`` observed on the same units.

    These are what CUPED needs (see :mod:`experiments.stats.cuped`): ``x`` is the unit's
    pre-experiment value of the metric (the pooled pre-period mean for units without history),
    ``y`` its in-experiment value.

    Attributes
    ----------
    n : int
        Number of units.
    sum_x, sum_y : float
        Sums of ``x`` and ``y``.
    sum_xx, sum_yy, sum_xy : float
        Sums of ``x**2``, ``y**2`` and ``x * y``.
    """

    n: int
    sum_x: float
    sum_y: float
    sum_xx: float
    sum_yy: float
    sum_xy: float

    def __post_init__(self) -> None:
        # Building the marginals validates n, the sums and both Cauchy–Schwarz bounds.
        x = Moments(self.n, self.sum_x, self.sum_xx)
        y = Moments(self.n, self.sum_y, self.sum_yy)
        sum_xy = _checks.finite(self.sum_xy, "sum_xy")
        for name, value in (("n", x.n), ("sum_x", x.sum), ("sum_y", y.sum)):
            object.__setattr__(self, name, value)
        object.__setattr__(self, "sum_xx", x.sum_sq)
        object.__setattr__(self, "sum_yy", y.sum_sq)
        object.__setattr__(self, "sum_xy", sum_xy)
        if x.n > 0:
            sxx, syy, sxy = self.centered()
            # The centered sums cancel digits of the raw ones; allow for that rounding.
            rounding = _RELATIVE_SLACK * (
                abs(sum_xy) + abs(x.sum * y.sum) / x.n + math.sqrt(x.sum_sq * y.sum_sq)
            )
            if abs(sxy) > math.sqrt(sxx * syy) + rounding:
                raise ValueError(
                    "`sum_xy` is inconsistent with the other sums: the implied correlation "
                    f"exceeds 1 (got sum_xy={sum_xy})"
                )

    @classmethod
    def from_values(cls, x: npt.ArrayLike, y: npt.ArrayLike) -> Self:
        """Joint moments of two 1-D arrays of equal length (covariate ``x``, metric ``y``)."""
        xs = np.asarray(x, dtype=np.float64)
        ys = np.asarray(y, dtype=np.float64)
        if xs.ndim != 1 or xs.shape != ys.shape:
            raise ValueError(
                f"`x` and `y` must be 1-D of equal length (got shapes {xs.shape}, {ys.shape})"
            )
        return cls(
            int(xs.size),
            float(xs.sum()),
            float(ys.sum()),
            float(np.dot(xs, xs)),
            float(np.dot(ys, ys)),
            float(np.dot(xs, ys)),
        )

    @classmethod
    def by_group(
        cls, groups: npt.ArrayLike, x: npt.ArrayLike, y: npt.ArrayLike, n_groups: int
    ) -> tuple[Self, ...]:
        """Joint moments of ``(x, y)`` split by group label, as in :meth:`Moments.by_group`."""
        labels, xs = _grouped(groups, x, n_groups)
        ys = np.asarray(y, dtype=np.float64)
        if ys.shape != xs.shape:
            raise ValueError(f"`y` must have the shape of `x` {xs.shape} (got {ys.shape})")

        def per_group(weights: npt.NDArray[np.float64] | None) -> Sequence[float]:
            return [float(v) for v in np.bincount(labels, weights=weights, minlength=n_groups)]

        columns = zip(
            per_group(None),
            per_group(xs),
            per_group(ys),
            per_group(xs * xs),
            per_group(ys * ys),
            per_group(xs * ys),
            strict=True,
        )
        return tuple(cls(int(c), sx, sy, sxx, syy, sxy) for c, sx, sy, sxx, syy, sxy in columns)

    def __add__(self, other: JointMoments) -> JointMoments:
        """Joint moments of the union of the two samples."""
        if not isinstance(other, JointMoments):
            return NotImplemented
        return JointMoments(
            self.n + other.n,
            self.sum_x + other.sum_x,
            self.sum_y + other.sum_y,
            self.sum_xx + other.sum_xx,
            self.sum_yy + other.sum_yy,
            self.sum_xy + other.sum_xy,
        )

    @property
    def x(self) -> Moments:
        """Moments of the covariate."""
        return Moments(self.n, self.sum_x, self.sum_xx)

    @property
    def y(self) -> Moments:
        """Moments of the metric."""
        return Moments(self.n, self.sum_y, self.sum_yy)

    @property
    def covariance(self) -> float:
        """Unbiased sample covariance of ``x`` and ``y``; needs ``n >= 2``."""
        if self.n < 2:
            raise ValueError(f"`n` must be at least 2 for a covariance (got {self.n})")
        return self.centered()[2] / (self.n - 1)

    def centered(self) -> tuple[float, float, float]:
        """Centered sums ``(S_xx, S_yy, S_xy)``: ``S_xy = sum((x - mean_x) * (y - mean_y))``."""
        if self.n == 0:
            return 0.0, 0.0, 0.0
        sxx = max(self.sum_xx - self.sum_x * self.sum_x / self.n, 0.0)
        syy = max(self.sum_yy - self.sum_y * self.sum_y / self.n, 0.0)
        sxy = self.sum_xy - self.sum_x * self.sum_y / self.n
        return sxx, syy, sxy


def _grouped(
    groups: npt.ArrayLike, values: npt.ArrayLike, n_groups: int
) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.float64]]:
    n_groups = _checks.count(n_groups, "n_groups", minimum=1)
    labels = np.asarray(groups)
    array = np.asarray(values, dtype=np.float64)
    if labels.ndim != 1 or labels.shape != array.shape:
        raise ValueError(
            f"`groups` and `values` must be 1-D of equal length "
            f"(got shapes {labels.shape}, {array.shape})"
        )
    if labels.size and not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"`groups` must hold integers (got dtype {labels.dtype})")
    if labels.size and (labels.min() < 0 or labels.max() >= n_groups):
        raise ValueError(
            f"`groups` must lie in [0, {n_groups}) (got {labels.min()}..{labels.max()})"
        )
    return labels.astype(np.intp, copy=False), array
