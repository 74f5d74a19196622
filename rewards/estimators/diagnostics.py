r"""Overlap and importance-weight diagnostics for a target policy against the logs.

An estimate is only as good as the overlap between the logging and target policies. Three
numbers say how much to trust one:

* **Effective sample size** ``ESS = (Σw)² / Σw²`` (Kish 1965): the number of on-policy events the
  weighted sample is worth. ``ESS / n`` near 1 means the policies agree; near 0, a few events
  carry the estimate.
* **Extreme weights** ``min w`` and ``max w``, and the **mean weight** (expected to be 1).
* **Low-overlap share**: the share of the target policy's probability mass placed on actions the
  logging policy proposed with probability below ``threshold`` (default 0.01),

      share = (1/n) Σ_i Σ_a π_target(a|x_i) · 1{π_log(a|x_i) < threshold},

  which needs the full logged and target pmfs of each event. Mass on such actions is barely
  explored by the log, so any estimate of it leans on a handful of events (or, with
  ``π_log(a|x) = 0``, cannot be estimated by importance weighting at all).

Arrays of pmfs have shape ``(n_events, max_actions)``; rows with fewer candidates are padded with
``NaN`` (or described by an explicit boolean ``mask``, True on real candidates).

References: L. Kish (1965), *Survey Sampling*, Wiley; A. B. Owen (2013), *Monte Carlo theory,
methods and examples*, ch. 9 (ESS for importance sampling).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import numpy.typing as npt

from rewards.estimators import _validation as check
from rewards.estimators._exact import ExactSum
from rewards.estimators._validation import FloatArray
from rewards.estimators.results import WeightSummary

BoolArray = npt.NDArray[np.bool_]

_PMF_TOLERANCE = 1e-6


def effective_sample_size(weights: npt.ArrayLike) -> float:
    """Kish's effective sample size ``(Σw)² / Σw²``.

    Parameters
    ----------
    weights
        Importance weights, shape ``(n,)``, non-negative.

    Returns
    -------
    float
        In ``[1, n]`` when some weight is positive, ``nan`` otherwise.
    """
    w = check.column("weights", weights)
    if (w < 0.0).any():
        i = int(np.flatnonzero(w < 0.0)[0])
        raise ValueError(f"`weights` must be non-negative (got {check.fmt(w[i])} at index {i})")
    sum_w2 = float(np.dot(w, w))
    return float(w.sum()) ** 2 / sum_w2 if sum_w2 > 0.0 else math.nan


@dataclass(frozen=True, slots=True)
class Report:
    """Diagnostics of a target policy over logged events.

    Attributes
    ----------
    weights
        ESS, extremes and mean of ``w = p_target / p_log`` at the chosen actions.
    low_overlap_share
        Mean over events of the target mass on actions with logged probability below
        ``threshold``, in [0, 1] (``nan`` before any event).
    threshold
        The logged-probability threshold used.
    """

    weights: WeightSummary
    low_overlap_share: float
    threshold: float

    @property
    def n(self) -> int:
        return self.weights.n


def _pmfs(
    p_log_all: npt.ArrayLike,
    p_target_all: npt.ArrayLike,
    chosen: npt.ArrayLike,
    mask: npt.ArrayLike | None,
    *,
    event: bool,
) -> tuple[FloatArray, FloatArray, npt.NDArray[np.intp], BoolArray]:
    """Validated ``(p_log_all, p_target_all, chosen, mask)``, padding set to 0."""
    p_log = np.asarray(p_log_all, dtype=np.float64)
    p_target = np.asarray(p_target_all, dtype=np.float64)
    if p_log.ndim != 2:
        raise ValueError(
            f"`p_log_all` must be 2-D (n_events, max_actions) (got shape {p_log.shape})"
        )
    if p_target.shape != p_log.shape:
        raise ValueError(
            f"`p_target_all` must have the shape of `p_log_all` {p_log.shape} "
            f"(got {p_target.shape})"
        )
    if mask is None:
        real = ~np.isnan(p_log)
    else:
        real = np.asarray(mask)
        if real.dtype != np.bool_ or real.shape != p_log.shape:
            raise ValueError(f"`mask` must be a boolean array of shape {p_log.shape}")

    def where(row: int) -> str:
        return "" if event else f" in row {row}"

    for name, values in (("p_log_all", p_log), ("p_target_all", p_target)):
        bad = real & ~np.isfinite(values)
        if mask is None and name == "p_target_all":
            # Without a mask the padding pattern of p_log_all defines the candidates.
            bad |= ~real & ~np.isnan(values)
        if bad.any():
            row = int(np.flatnonzero(bad.any(axis=1))[0])
            raise ValueError(
                f"`{name}` must be finite on candidates and NaN only on the padding of "
                f"`p_log_all`{where(row)}"
            )
        out = real & ((values < 0.0) | (values > 1.0))
        if out.any():
            row, col = (int(i) for i in np.argwhere(out)[0])
            raise ValueError(
                f"`{name}` must be in [0, 1] (got {check.fmt(values[row, col])}{where(row)})"
            )
    p_log = np.where(real, p_log, 0.0)
    p_target = np.where(real, p_target, 0.0)
    for name, values in (("p_log_all", p_log), ("p_target_all", p_target)):
        totals = values.sum(axis=1)
        off = np.abs(totals - 1.0) > _PMF_TOLERANCE
        if off.any():
            row = int(np.flatnonzero(off)[0])
            raise ValueError(
                f"`{name}` rows must sum to 1 (got {check.fmt(totals[row])}{where(row)})"
            )

    index = np.asarray(chosen)
    if index.shape != p_log.shape[:1] or not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"`chosen` must be integers of shape {p_log.shape[:1]}")
    rows = np.arange(p_log.shape[0])
    inside = (index >= 0) & (index < p_log.shape[1])
    valid = inside.copy()
    valid[inside] = real[rows[inside], index[inside]] & (p_log[rows[inside], index[inside]] > 0.0)
    if not valid.all():
        row = int(np.flatnonzero(~valid)[0])
        raise ValueError(
            f"`chosen` must index a candidate with positive logged probability "
            f"(got {int(index[row])}{where(row)})"
        )
    return p_log, p_target, index.astype(np.intp), real


class Diagnostics:
    """Streaming, mergeable overlap and weight diagnostics.

    Parameters
    ----------
    threshold
        Logged probabilities below it count as low overlap, in (0, 1]; default 0.01.

    Examples
    --------
    >>> d = Diagnostics()
    >>> d.add([0.5, 0.495, 0.005], [0.2, 0.2, 0.6], chosen=0)
    >>> d.get().low_overlap_share
    0.6
    """

    def __init__(self, threshold: float = 0.01) -> None:
        t = check.real("threshold", threshold)
        if not 0.0 < t <= 1.0:
            raise ValueError(f"`threshold` must be in (0, 1] (got {check.fmt(t)})")
        self._threshold = t
        self._n = 0
        self._sum_w = ExactSum()
        self._sum_w2 = ExactSum()
        self._sum_low = ExactSum()
        self._w_min = math.inf
        self._w_max = -math.inf

    @property
    def threshold(self) -> float:
        return self._threshold

    def add(self, p_log_all: Sequence[float], p_target_all: Sequence[float], chosen: int) -> None:
        """Add one event.

        Parameters
        ----------
        p_log_all
            The logged pmf over the event's candidates, shape ``(n_actions,)``.
        p_target_all
            The target policy's pmf over the same candidates, shape ``(n_actions,)``.
        chosen
            Index of the logged chosen action.
        """
        self._add(
            np.asarray(p_log_all, dtype=np.float64)[None, :],
            np.asarray(p_target_all, dtype=np.float64)[None, :],
            np.array([chosen]),
            None,
            event=True,
        )

    def add_arrays(
        self,
        p_log_all: npt.ArrayLike,
        p_target_all: npt.ArrayLike,
        chosen: npt.ArrayLike,
        mask: npt.ArrayLike | None = None,
    ) -> None:
        """Add a batch of events.

        Parameters
        ----------
        p_log_all, p_target_all
            Logged and target pmfs, shape ``(n_events, max_actions)``, NaN-padded unless ``mask``.
        chosen
            Logged chosen action per event, integer indices, shape ``(n_events,)``.
        mask
            Optional boolean ``(n_events, max_actions)``, True on real candidates.
        """
        self._add(p_log_all, p_target_all, chosen, mask, event=False)

    def get(self) -> Report:
        """The diagnostics of every event added."""
        return Report(
            weights=WeightSummary.from_sums(
                n=self._n,
                sum_w=self._sum_w.value(),
                sum_w2=self._sum_w2.value(),
                w_min=self._w_min,
                w_max=self._w_max,
            ),
            low_overlap_share=self._sum_low.value() / self._n if self._n else math.nan,
            threshold=self._threshold,
        )

    def __add__(self, other: Self) -> Self:
        """Merge diagnostics of disjoint shards (exact, as for the estimators)."""
        if type(other) is not type(self):
            raise TypeError("can only merge Diagnostics with Diagnostics")
        if other._threshold != self._threshold:
            raise ValueError(
                f"cannot merge Diagnostics with different thresholds "
                f"({self._threshold:g} vs {other._threshold:g})"
            )
        result = copy.deepcopy(self)
        result._n += other._n
        result._sum_w = self._sum_w.merged(other._sum_w)
        result._sum_w2 = self._sum_w2.merged(other._sum_w2)
        result._sum_low = self._sum_low.merged(other._sum_low)
        result._w_min = min(self._w_min, other._w_min)
        result._w_max = max(self._w_max, other._w_max)
        return result

    def _add(
        self,
        p_log_all: npt.ArrayLike,
        p_target_all: npt.ArrayLike,
        chosen: npt.ArrayLike,
        mask: npt.ArrayLike | None,
        *,
        event: bool,
    ) -> None:
        p_log, p_target, index, real = _pmfs(p_log_all, p_target_all, chosen, mask, event=event)
        if p_log.shape[0] == 0:
            return
        rows = np.arange(p_log.shape[0])
        w = p_target[rows, index] / p_log[rows, index]
        low = np.where(real & (p_log < self._threshold), p_target, 0.0).sum(axis=1)
        self._n += p_log.shape[0]
        self._sum_w.add(float(w.sum()))
        self._sum_w2.add(float(np.dot(w, w)))
        self._sum_low.add(float(low.sum()))
        self._w_min = min(self._w_min, float(w.min()))
        self._w_max = max(self._w_max, float(w.max()))


def diagnose(
    p_log_all: npt.ArrayLike,
    p_target_all: npt.ArrayLike,
    chosen: npt.ArrayLike,
    *,
    threshold: float = 0.01,
    mask: npt.ArrayLike | None = None,
) -> Report:
    """Diagnostics of a target policy over a batch of logged events.

    Parameters
    ----------
    p_log_all, p_target_all
        Logged and target pmfs, shape ``(n_events, max_actions)``, NaN-padded unless ``mask``.
    chosen
        Logged chosen action per event, integer indices, shape ``(n_events,)``.
    threshold
        Logged probabilities below it count as low overlap, in (0, 1].
    mask
        Optional boolean ``(n_events, max_actions)``, True on real candidates.
    """
    d = Diagnostics(threshold)
    d.add_arrays(p_log_all, p_target_all, chosen, mask)
    return d.get()
