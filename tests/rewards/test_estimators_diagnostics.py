"""Overlap and importance-weight diagnostics: hand oracles, streaming, padding and masks."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from rewards.estimators import diagnostics, ips
from rewards.estimators.diagnostics import Diagnostics, diagnose, effective_sample_size

NAN = math.nan

# Two events, the second with only two candidates (NaN padding):
#   event 0: logged [0.5, 0.495, 0.005], target [0.2, 0.2, 0.6], chosen 0 -> w = 0.2/0.5 = 0.4
#            below 0.01: action 2 only -> target mass 0.6
#   event 1: logged [0.992, 0.008, nan], target [0.5, 0.5, nan], chosen 1 -> w = 0.5/0.008 = 62.5
#            below 0.01: action 1 only -> target mass 0.5
P_LOG = np.array([[0.5, 0.495, 0.005], [0.992, 0.008, NAN]])
P_TARGET = np.array([[0.2, 0.2, 0.6], [0.5, 0.5, NAN]])
CHOSEN = np.array([0, 1])


def test_ess_of_a_hand_example() -> None:
    # weights [2, 2, 0.5]: (Σw)² / Σw² = 4.5² / (4 + 4 + 0.25) = 20.25 / 8.25 = 27/11.
    assert effective_sample_size([2.0, 2.0, 0.5]) == pytest.approx(27 / 11, abs=1e-15)
    assert effective_sample_size([1.0, 1.0, 1.0, 1.0]) == 4.0
    assert effective_sample_size([5.0, 0.0, 0.0]) == 1.0
    assert math.isnan(effective_sample_size([0.0, 0.0]))


def test_estimator_weight_summary_matches_hand_ess() -> None:
    est = ips.Estimator()
    for p_log, p_target in ((0.5, 1.0), (0.25, 0.5), (0.2, 0.1)):  # w = 2, 2, 0.5
        est.add(p_log, 1.0, p_target)
    w = est.weights
    assert w.ess == pytest.approx(27 / 11, abs=1e-15)
    assert (w.n, w.min, w.max) == (3, 0.5, 2.0)
    assert w.mean == pytest.approx(1.5)
    assert w.ess_ratio == pytest.approx(9 / 11)


def test_low_overlap_share_of_a_hand_example() -> None:
    report = diagnose(P_LOG, P_TARGET, CHOSEN)
    # (0.6 + 0.5) / 2 = 0.55
    assert report.low_overlap_share == pytest.approx(0.55, abs=1e-15)
    assert report.threshold == 0.01
    assert report.n == 2
    # weights 0.4 and 62.5: ESS = 62.9² / (0.16 + 3906.25)
    assert report.weights.ess == pytest.approx(62.9**2 / (0.16 + 62.5**2), rel=1e-14)
    assert (report.weights.min, report.weights.max) == pytest.approx((0.4, 62.5))


def test_threshold_changes_what_counts_as_low() -> None:
    # At 0.001 nothing is below; at 0.5 event 0 counts actions 1, 2 (0.8), event 1 action 1 (0.5).
    assert diagnose(P_LOG, P_TARGET, CHOSEN, threshold=0.001).low_overlap_share == 0.0
    assert diagnose(P_LOG, P_TARGET, CHOSEN, threshold=0.5).low_overlap_share == pytest.approx(0.65)


def test_mask_equals_nan_padding() -> None:
    mask = ~np.isnan(P_LOG)
    zero_padded_log = np.where(mask, P_LOG, 0.0)
    zero_padded_target = np.where(mask, P_TARGET, 0.0)
    assert diagnose(zero_padded_log, zero_padded_target, CHOSEN, mask=mask) == diagnose(
        P_LOG, P_TARGET, CHOSEN
    )


def test_streaming_and_merging_equal_the_batch() -> None:
    rng = np.random.default_rng(3)
    n, k = 500, 6
    p_log = rng.dirichlet(np.full(k, 0.3), n)
    p_target = rng.dirichlet(np.full(k, 0.5), n)
    p_log = 0.95 * p_log + 0.05 / k  # keep every action loggable
    chosen = np.array([rng.choice(k, p=row) for row in p_log])

    streamed = Diagnostics()
    for row_log, row_target, a in zip(p_log, p_target, chosen, strict=True):
        streamed.add(row_log.tolist(), row_target.tolist(), int(a))
    shards = Diagnostics(), Diagnostics()
    shards[0].add_arrays(p_log[:200], p_target[:200], chosen[:200])
    shards[1].add_arrays(p_log[200:], p_target[200:], chosen[200:])
    batch = diagnose(p_log, p_target, chosen)

    merged = (shards[0] + shards[1]).get()
    for report in (streamed.get(), merged):
        assert report.n == batch.n
        assert report.low_overlap_share == pytest.approx(batch.low_overlap_share, rel=1e-12)
        assert report.weights.ess == pytest.approx(batch.weights.ess, rel=1e-12)
        assert report.weights.max == batch.weights.max

    # Weights agree with an estimator fed the chosen actions' propensities.
    rows = np.arange(n)
    est = ips.Estimator()
    est.add_arrays(p_log[rows, chosen], np.zeros(n), p_target[rows, chosen])
    assert est.weights.ess == pytest.approx(batch.weights.ess, rel=1e-12)


def test_empty_diagnostics() -> None:
    report = Diagnostics().get()
    assert report.n == 0
    assert math.isnan(report.low_overlap_share)
    assert math.isnan(report.weights.ess)


@pytest.mark.parametrize(
    ("p_log", "p_target", "chosen", "message"),
    [
        (
            [[0.5, 0.4, 0.05]],
            [[0.2, 0.2, 0.6]],
            [0],
            "`p_log_all` rows must sum to 1 (got 0.95 in row 0)",
        ),
        (
            [[0.5, 0.5, NAN]],
            [[0.2, 0.2, 0.6]],
            [0],
            "`p_target_all` must be finite on candidates and NaN only on the padding of "
            "`p_log_all` in row 0",
        ),
        (
            [[0.5, 0.5, 0.0]],
            [[0.2, 0.2, 0.6]],
            [2],
            "`chosen` must index a candidate with positive logged probability (got 2 in row 0)",
        ),
        (
            [[0.5, 0.5, NAN]],
            [[0.5, 0.5, NAN]],
            [2],
            "`chosen` must index a candidate with positive logged probability (got 2 in row 0)",
        ),
        ([[1.5, -0.5]], [[0.5, 0.5]], [0], "`p_log_all` must be in [0, 1] (got 1.5 in row 0)"),
        ([0.5, 0.5], [0.5, 0.5], [0], "`p_log_all` must be 2-D (n_events, max_actions)"),
        ([[0.5, 0.5]], [[0.5, 0.5]], [0.0], "`chosen` must be integers of shape (1,)"),
    ],
)
def test_invalid_pmfs_are_rejected(
    p_log: list[list[float]], p_target: list[list[float]], chosen: list[int], message: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        diagnose(p_log, p_target, chosen)


def test_streaming_errors_have_no_row_and_threshold_is_checked() -> None:
    with pytest.raises(ValueError, match=re.escape("`p_target_all` rows must sum to 1 (got 0.9)")):
        Diagnostics().add([0.5, 0.5], [0.5, 0.4], chosen=0)
    with pytest.raises(ValueError, match=re.escape("`threshold` must be in (0, 1] (got 0)")):
        Diagnostics(threshold=0.0)
    with pytest.raises(ValueError, match="different thresholds"):
        Diagnostics(0.01) + Diagnostics(0.02)
    with pytest.raises(
        ValueError, match=re.escape("`weights` must be non-negative (got -1 at index 1)")
    ):
        diagnostics.effective_sample_size([1.0, -1.0])
