"""Sample-ratio mismatch: are units split between arms in the proportions the weights promise?

A mismatch means assignment or logging is broken (units dropped by a crash in one arm, a bot
filter hitting one policy, a cache serving stale arms) and every other statistic of the
experiment is suspect, however significant it looks (Fabijan et al. 2019, "Diagnosing Sample
Ratio Mismatch in Online Controlled Experiments", KDD).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from experiments.stats import _checks, _distributions

__all__ = ["DEFAULT_SRM_THRESHOLD", "SrmResult", "sample_ratio_mismatch"]

DEFAULT_SRM_THRESHOLD = 0.001
"""p-value below which a mismatch is flagged; strict, because the check runs at every look."""


@dataclass(frozen=True, slots=True)
class SrmResult:
    """Outcome of the sample-ratio mismatch check.

    Attributes
    ----------
    observed : tuple of int
        Units per arm.
    expected : tuple of float
        Units per arm the weights predict for the observed total.
    chi2 : float
        Pearson's chi-square statistic.
    df : int
        Degrees of freedom, ``arms - 1``.
    p_value : float
        Goodness-of-fit p-value.
    flagged : bool
        ``p_value < threshold``.
    threshold : float
        The threshold used.
    """

    observed: tuple[int, ...]
    expected: tuple[float, ...]
    chi2: float
    df: int
    p_value: float
    flagged: bool
    threshold: float


def sample_ratio_mismatch(
    counts: Sequence[int],
    weights: Sequence[float],
    *,
    threshold: float = DEFAULT_SRM_THRESHOLD,
) -> SrmResult:
    """Pearson chi-square goodness-of-fit test of observed unit counts against arm weights.

    ``chi2 = sum((observed - expected)**2 / expected)`` with ``expected = total * w / sum(w)``,
    referred to a chi-square distribution with ``arms - 1`` degrees of freedom (Pearson 1900;
    equals ``scipy.stats.chisquare(counts, expected)``). Count *units* (the randomization unit),
    not decisions: decisions per unit vary with the treatment itself.

    Parameters
    ----------
    counts : sequence of int, length k >= 2
        Units observed in each arm.
    weights : sequence of float, length k
        The arms' traffic weights (any positive scale).
    threshold : float
        Flag when the p-value is below this.

    Returns
    -------
    SrmResult
        With no units at all, ``chi2 = 0`` and ``p_value = 1``.
    """
    threshold = _checks.probability(threshold, "threshold")
    if len(counts) < 2:
        raise ValueError(f"`counts` must have at least 2 arms (got {len(counts)})")
    if len(weights) != len(counts):
        raise ValueError(
            f"`weights` must have one entry per arm in `counts` ({len(counts)}) "
            f"(got {len(weights)})"
        )
    observed = tuple(_checks.count(c, f"counts[{i}]") for i, c in enumerate(counts))
    shares = [_checks.finite(w, f"weights[{i}]") for i, w in enumerate(weights)]
    for i, share in enumerate(shares):
        if share <= 0:
            raise ValueError(f"`weights[{i}]` must be positive (got {share})")
    total = sum(observed)
    expected = tuple(total * share / sum(shares) for share in shares)
    df = len(observed) - 1
    if total == 0:
        return SrmResult(observed, expected, 0.0, df, 1.0, False, threshold)
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, expected, strict=True))
    p_value = _distributions.chi2_sf(chi2, df)
    return SrmResult(observed, expected, chi2, df, p_value, p_value < threshold, threshold)
