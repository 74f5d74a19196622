"""Sample-ratio mismatch check against scipy, with flagged and fair splits."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from experiments.stats import sample_ratio_mismatch


def test_matches_scipy_chisquare() -> None:
    counts, weights = [480, 530, 990], [1, 1, 2]
    result = sample_ratio_mismatch(counts, weights)
    expected = stats.chisquare(counts, [500, 500, 1000])
    assert result.chi2 == pytest.approx(expected.statistic)
    assert result.p_value == pytest.approx(expected.pvalue)
    assert result.df == 2
    assert result.expected == (500.0, 500.0, 1000.0)
    # By hand: 20**2/500 + 30**2/500 + 10**2/1000 = 0.8 + 1.8 + 0.1
    assert result.chi2 == pytest.approx(2.7)


def test_flags_a_52_48_split_of_a_50_50_experiment_with_large_n() -> None:
    result = sample_ratio_mismatch([52_000, 48_000], [50, 50])
    assert result.flagged
    assert result.chi2 == pytest.approx(160.0)
    assert result.p_value < 1e-30


def test_does_not_flag_52_48_with_small_n() -> None:
    result = sample_ratio_mismatch([52, 48], [1, 1])
    assert not result.flagged
    assert result.p_value == pytest.approx(stats.chisquare([52, 48]).pvalue)


def test_does_not_flag_fair_splits() -> None:
    rng = np.random.default_rng(30)
    flagged = 0
    for _ in range(2000):
        counts = rng.multinomial(100_000, [0.5, 0.3, 0.2])
        flagged += sample_ratio_mismatch(list(counts), [5, 3, 2]).flagged
    # A fair split is flagged with probability 0.001; 2000 trials expect 2.
    assert flagged <= 8
    fair = sample_ratio_mismatch([50_113, 49_887], [1, 1])
    assert not fair.flagged


def test_weights_are_scale_free_and_empty_experiment_is_not_flagged() -> None:
    assert sample_ratio_mismatch([90, 10], [9, 1]) == sample_ratio_mismatch([90, 10], [0.9, 0.1])
    empty = sample_ratio_mismatch([0, 0], [1, 1])
    assert (empty.p_value, empty.flagged, empty.chi2) == (1.0, False, 0.0)


@pytest.mark.parametrize(
    ("counts", "weights", "threshold", "error", "message"),
    [
        ([10], [1], 0.001, ValueError, r"`counts` must have at least 2 arms \(got 1\)"),
        ([10, 10], [1], 0.001, ValueError, r"`weights` must have one entry per arm"),
        ([10, -1], [1, 1], 0.001, ValueError, r"`counts\[1\]` must be at least 0 \(got -1\)"),
        ([10, 1.5], [1, 1], 0.001, TypeError, r"`counts\[1\]` must be an integer"),
        ([10, 10], [1, 0], 0.001, ValueError, r"`weights\[1\]` must be positive \(got 0.0\)"),
        ([10, 10], [1, 1], 0.0, ValueError, r"`threshold` must be in \(0, 1\) \(got 0.0\)"),
    ],
)
def test_invalid_inputs_name_the_argument(
    counts: list[int],
    weights: list[float],
    threshold: float,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        sample_ratio_mismatch(counts, weights, threshold=threshold)
