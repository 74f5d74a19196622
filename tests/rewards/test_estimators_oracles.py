"""Hand-computed oracles for every estimator, and independent plain-numpy formulas."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rewards.estimators import (
    Interval,
    bernstein,
    clipped_ips,
    dm,
    dr,
    dr_os,
    gaussian,
    ips,
    sndr,
    snips,
    switch_dr,
)

# Three logged events used throughout:  (p_log, reward, p_target, r_hat, v_hat)
#   event 0: (0.50, 1.0, 1.0, 0.6, 0.7)  -> w = 1.0 / 0.50 = 2.0
#   event 1: (0.25, 0.0, 0.5, 0.3, 0.4)  -> w = 0.5 / 0.25 = 2.0
#   event 2: (0.20, 1.0, 0.1, 0.5, 0.8)  -> w = 0.1 / 0.20 = 0.5
EVENTS = [
    (0.50, 1.0, 1.0, 0.6, 0.7),
    (0.25, 0.0, 0.5, 0.3, 0.4),
    (0.20, 1.0, 0.1, 0.5, 0.8),
]


def _ips_family(estimator: ips.Estimator) -> ips.Estimator:
    for p_log, reward, p_target, _, _ in EVENTS:
        estimator.add(p_log, reward, p_target)
    return estimator


def _dr_family(estimator: dr.Estimator) -> dr.Estimator:
    for event in EVENTS:
        estimator.add(*event)
    return estimator


def test_ips_of_one_event() -> None:
    # w = 0.5 / 0.25 = 2; IPS = w * r / n = 2 * 1 / 1 = 2.
    est = ips.Estimator()
    est.add(p_log=0.25, reward=1.0, p_target=0.5)
    assert est.get() == 2.0
    assert est.n == 1


def test_ips_of_three_events() -> None:
    # w * r = 2 * 1 + 2 * 0 + 0.5 * 1 = 2.5; IPS = 2.5 / 3.
    assert _ips_family(ips.Estimator()).get() == pytest.approx(2.5 / 3, abs=1e-15)


def test_snips_of_three_events() -> None:
    # Σ w r = 2.5, Σ w = 2 + 2 + 0.5 = 4.5; SNIPS = 2.5 / 4.5 = 5/9.
    assert _ips_family(snips.Estimator()).get() == pytest.approx(5 / 9, abs=1e-15)


def test_clipped_ips_at_the_clip() -> None:
    # clip = 1.5: weights 2, 2, 0.5 -> 1.5, 1.5, 0.5; Σ v r = 1.5 + 0 + 0.5 = 2; value = 2/3.
    assert _ips_family(clipped_ips.Estimator(clip=1.5)).get() == pytest.approx(2 / 3, abs=1e-15)


def test_clipped_ips_above_every_weight_is_ips() -> None:
    clipped = _ips_family(clipped_ips.Estimator(clip=2.0)).get()
    assert clipped == _ips_family(ips.Estimator()).get()


def test_dr_with_given_model() -> None:
    # t = v̂ + w (r - r̂):
    #   0.7 + 2.0 * (1 - 0.6) =  1.50
    #   0.4 + 2.0 * (0 - 0.3) = -0.20
    #   0.8 + 0.5 * (1 - 0.5) =  1.05
    # DR = (1.5 - 0.2 + 1.05) / 3 = 2.35 / 3.
    assert _dr_family(dr.Estimator()).get() == pytest.approx(2.35 / 3, abs=1e-15)


def test_dm_is_the_mean_model_value() -> None:
    # (0.7 + 0.4 + 0.8) / 3 = 1.9 / 3.
    assert _dr_family(dm.Estimator()).get() == pytest.approx(1.9 / 3, abs=1e-15)


def test_sndr_self_normalizes_the_correction() -> None:
    # mean v̂ = 1.9 / 3; Σ w (r - r̂) = 2 * 0.4 + 2 * (-0.3) + 0.5 * 0.5 = 0.45; Σ w = 4.5;
    # SNDR = 1.9 / 3 + 0.45 / 4.5 = 1.9 / 3 + 0.1.
    assert _dr_family(sndr.Estimator()).get() == pytest.approx(1.9 / 3 + 0.1, abs=1e-15)


def test_switch_dr_drops_corrections_above_tau() -> None:
    # tau = 1: events 0 and 1 (w = 2) fall back to v̂; event 2 keeps its correction.
    # (0.7 + 0.4 + 1.05) / 3 = 2.15 / 3.
    assert _dr_family(switch_dr.Estimator(tau=1.0)).get() == pytest.approx(2.15 / 3, abs=1e-15)


def test_dr_os_shrinks_weights() -> None:
    # λ = 4: ŵ(2) = 4 * 2 / (4 + 4) = 1; ŵ(0.5) = 4 * 0.5 / (0.25 + 4) = 8/17.
    #   0.7 + 1 * 0.4 = 1.1;  0.4 + 1 * (-0.3) = 0.1;  0.8 + (8/17) * 0.5 = 0.8 + 4/17
    # DR-OS = (2 + 4/17) / 3 = 38/51.
    assert _dr_family(dr_os.Estimator(lambda_=4.0)).get() == pytest.approx(38 / 51, abs=1e-15)


def test_dr_variants_reduce_to_dr_at_their_limits() -> None:
    expected = _dr_family(dr.Estimator()).get()
    assert _dr_family(switch_dr.Estimator(tau=math.inf)).get() == expected
    assert _dr_family(dr_os.Estimator(lambda_=math.inf)).get() == expected
    assert _dr_family(switch_dr.Estimator(tau=0.0)).get() == _dr_family(dm.Estimator()).get()


def test_gaussian_interval_of_ips_by_hand() -> None:
    # terms t = w r = [2, 0, 0.5]; mean m = 5/6;
    # s² = ((2 - m)² + (0 - m)² + (0.5 - m)²) / 2 = (49/36 + 25/36 + 4/36) / 2 = 13/12;
    # se = sqrt(s² / 3) = sqrt(13/36); half = 1.959963984540054 * sqrt(13/36).
    ci = _ips_family(ips.Estimator()).interval(alpha=0.05)
    half = 1.959963984540054 * math.sqrt(13 / 36)
    assert ci.low == pytest.approx(5 / 6 - half, abs=1e-12)
    assert ci.high == pytest.approx(5 / 6 + half, abs=1e-12)


def test_gaussian_critical_value() -> None:
    assert gaussian.z(0.05) == pytest.approx(1.959963984540054, abs=1e-12)
    # se = sqrt(0.25) = 0.5.
    ci = gaussian.interval(1.0, 0.25, alpha=0.05)
    assert (ci.low, ci.high) == pytest.approx(
        (1.0 - 0.5 * 1.959963984540054, 1.0 + 0.5 * 1.959963984540054), abs=1e-12
    )
    assert gaussian.interval(1.0, math.nan) == Interval(-math.inf, math.inf)


def test_bernstein_half_width_by_hand() -> None:
    # Maurer-Pontil with δ = α/2 per side: ln(4/0.05) = ln 80 = 4.382026634673881;
    # sqrt(2 * 0.25 * ln80 / 100) + 7 * 1 * ln80 / (3 * 99) = 0.1480207 + 0.1032801 = 0.2513008.
    log80 = math.log(80.0)
    expected = math.sqrt(2 * 0.25 * log80 / 100) + 7 * log80 / (3 * 99)
    assert bernstein.half_width(0.25, 100, 1.0, 0.05) == pytest.approx(expected, rel=1e-14)
    assert expected == pytest.approx(0.2513008, abs=1e-7)


@pytest.fixture(scope="module")
def logged() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(2024)
    n = 5_000
    p_log = rng.uniform(0.02, 1.0, n)
    p_target = rng.uniform(0.0, 1.0, n)
    reward = rng.normal(0.3, 1.0, n)
    return p_log, reward, p_target


def test_ips_matches_plain_numpy(logged: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    p_log, reward, p_target = logged
    est = ips.Estimator()
    est.add_arrays(p_log, reward, p_target)
    assert est.get() == pytest.approx(np.mean(p_target / p_log * reward), rel=1e-9, abs=1e-9)


def test_snips_matches_plain_numpy(logged: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    p_log, reward, p_target = logged
    w = p_target / p_log
    est = snips.Estimator()
    est.add_arrays(p_log, reward, p_target)
    assert est.get() == pytest.approx(np.sum(w * reward) / np.sum(w), rel=1e-9, abs=1e-9)


def test_gaussian_standard_errors_match_plain_numpy(
    logged: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    p_log, reward, p_target = logged
    n = len(p_log)
    w = p_target / p_log
    z = 1.959963984540054

    est = ips.Estimator()
    est.add_arrays(p_log, reward, p_target)
    se = np.std(w * reward, ddof=1) / np.sqrt(n)
    assert est.interval().width == pytest.approx(2 * z * se, rel=1e-9)

    est = snips.Estimator()
    est.add_arrays(p_log, reward, p_target)
    value = np.sum(w * reward) / np.sum(w)
    influence = w * (reward - value) / np.mean(w)
    se = np.sqrt(np.sum(influence**2) / (n - 1) / n)
    assert est.interval().width == pytest.approx(2 * z * se, rel=1e-9)


def test_sndr_matches_plain_numpy(logged: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    p_log, reward, p_target = logged
    rng = np.random.default_rng(7)
    n = len(p_log)
    r_hat = rng.normal(0.3, 0.5, n)
    v_hat = rng.normal(0.3, 0.5, n)
    w = p_target / p_log
    delta = reward - r_hat
    value = np.mean(v_hat) + np.sum(w * delta) / np.sum(w)
    influence = (v_hat - v_hat.mean()) + w * (delta - np.sum(w * delta) / np.sum(w)) / w.mean()
    se = np.sqrt(np.sum(influence**2) / (n - 1) / n)

    est = sndr.Estimator()
    est.add_arrays(p_log, reward, p_target, r_hat, v_hat)
    assert est.get() == pytest.approx(value, rel=1e-9)
    assert est.interval().width == pytest.approx(2 * 1.959963984540054 * se, rel=1e-9)
