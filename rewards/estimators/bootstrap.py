"""Vectorized percentile bootstrap over per-event sufficient statistics.

Efron (1979), "Bootstrap methods: another look at the jackknife", Annals of Statistics 7(1).

Every estimator here is a function of column sums of a per-event statistics matrix ``(k, n)``. A
resample drawn with replacement is therefore a vector of multiplicities ``c`` (shape ``(n,)``, sum
``n``) and its sums are ``columns @ c``: one index draw, one ``bincount`` and one matrix product per
resample, batched so that a batch holds about ``2**22`` indices. The percentile interval takes the
``alpha/2`` and ``1 - alpha/2`` quantiles of the resampled estimates. Unlike the other intervals it
needs the events themselves, so it is computed on the arrays path only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from rewards.estimators import _validation as check
from rewards.estimators._validation import FloatArray
from rewards.estimators.results import Interval

Statistic = Callable[[FloatArray, int], FloatArray]
"""Maps column sums of shape ``(B, k)`` and the event count to ``B`` estimates."""

_BATCH_ELEMENTS = 1 << 22


def generator(rng: np.random.Generator | int) -> np.random.Generator:
    """``rng`` itself, or a PCG64 generator seeded with it."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, bool) or not isinstance(rng, int | np.integer) or rng < 0:
        raise TypeError(f"`rng` must be a numpy Generator or a non-negative int seed (got {rng!r})")
    return np.random.default_rng(int(rng))


def replicates(
    columns: FloatArray,
    statistic: Statistic,
    *,
    n_resamples: int = 200,
    rng: np.random.Generator | int = 0,
) -> FloatArray:
    """Bootstrap replicates of ``statistic``.

    Parameters
    ----------
    columns
        Per-event statistics, shape ``(k, n)``.
    statistic
        Maps resampled column sums ``(B, k)`` and ``n`` to estimates ``(B,)``.
    n_resamples
        Number of resamples ``B``.
    rng
        A numpy ``Generator`` or an integer seed; the same seed gives the same replicates.

    Returns
    -------
    numpy.ndarray
        Shape ``(n_resamples,)``.
    """
    if isinstance(n_resamples, bool) or not isinstance(n_resamples, int) or n_resamples < 1:
        raise ValueError(f"`n_resamples` must be a positive integer (got {n_resamples!r})")
    gen = generator(rng)
    n = columns.shape[1]
    if n == 0:
        return np.full(n_resamples, np.nan)
    batch = max(1, min(n_resamples, _BATCH_ELEMENTS // n))
    index_dtype = np.int32 if batch * n < np.iinfo(np.int32).max else np.int64
    out = np.empty(n_resamples)
    for start in range(0, n_resamples, batch):
        b = min(batch, n_resamples - start)
        draws = gen.integers(0, n, size=(b, n), dtype=index_dtype)
        # Offsetting each row by its resample number lets one bincount count all b resamples.
        draws += (np.arange(b, dtype=index_dtype) * n)[:, None]
        counts = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n)
        out[start : start + b] = statistic(counts.astype(np.float64) @ columns.T, n)
    return out


def interval(
    columns: FloatArray,
    statistic: Statistic,
    *,
    alpha: float = 0.05,
    n_resamples: int = 200,
    rng: np.random.Generator | int = 0,
) -> Interval:
    """Percentile bootstrap interval of ``statistic`` (arguments as in :func:`replicates`).

    A replicate that is undefined (``nan``, e.g. a self-normalized estimate whose resample has
    no positive weight) makes the interval ``nan``: with so little data there is no interval.
    """
    a = check.alpha(alpha)
    values = replicates(columns, statistic, n_resamples=n_resamples, rng=rng)
    low, high = np.quantile(values, [a / 2.0, 1.0 - a / 2.0])
    return Interval(float(low), float(high))
