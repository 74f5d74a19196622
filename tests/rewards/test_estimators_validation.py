"""Input validation: every error names the argument, and messages are pinned."""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pytest

from rewards.estimators import (
    bootstrap,
    clipped_ips,
    cressie_read,
    dr,
    dr_os,
    ips,
    sndr,
    snips,
    switch_dr,
)


def _raises(message: str) -> Any:
    return pytest.raises(ValueError, match=re.escape(message))


@pytest.mark.parametrize(
    ("p_log", "reward", "p_target", "message"),
    [
        (0.0, 1.0, 0.5, "`p_log` must be in (0, 1] (got 0)"),
        (1.5, 1.0, 0.5, "`p_log` must be in (0, 1] (got 1.5)"),
        (-0.2, 1.0, 0.5, "`p_log` must be in (0, 1] (got -0.2)"),
        (math.nan, 1.0, 0.5, "`p_log` must be finite (got nan)"),
        (0.5, math.inf, 0.5, "`reward` must be finite (got inf)"),
        (0.5, 1.0, -0.1, "`p_target` must be in [0, 1] (got -0.1)"),
        (0.5, 1.0, 1.0000001, "`p_target` must be in [0, 1] (got 1)"),
        (0.5, 1.0, math.nan, "`p_target` must be finite (got nan)"),
    ],
)
def test_add_rejects_bad_events(p_log: float, reward: float, p_target: float, message: str) -> None:
    est = ips.Estimator()
    with _raises(message):
        est.add(p_log, reward, p_target)
    assert est.n == 0  # a rejected event leaves no trace


def test_rewards_outside_the_declared_range() -> None:
    with _raises("`reward` must be in [0, 1] (got 2)"):
        ips.Estimator(reward_range=(0, 1)).add(0.5, 2.0, 0.5)
    est = dr.Estimator(reward_range=(0, 1))
    with _raises("`r_hat` must be in [0, 1] (got -0.5)"):
        est.add(0.5, 1.0, 0.5, -0.5, 0.5)
    with _raises("`v_hat` must be in [0, 1] (got 1.5)"):
        est.add(0.5, 1.0, 0.5, 0.5, 1.5)
    with _raises("`v_hat` must be in [0, 1] (got 3 at index 1)"):
        est.add_arrays([0.5, 0.5], [1.0, 1.0], [0.5, 0.5], [0.5, 0.5], [0.5, 3.0])


def test_non_numbers_name_the_argument() -> None:
    with pytest.raises(TypeError, match=re.escape("`reward` must be a real number (got 'one')")):
        ips.Estimator().add(0.5, "one", 0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`p_target` must be an array of real numbers"):
        ips.Estimator().add_arrays([0.5], [1.0], ["x"])


def test_arrays_report_the_first_bad_index() -> None:
    est = ips.Estimator()
    with _raises("`p_log` must be in (0, 1] (got 0 at index 2)"):
        est.add_arrays([0.5, 0.2, 0.0, 0.0], [1, 1, 1, 1], [0.5, 0.5, 0.5, 0.5])
    with _raises("`reward` must be finite (got nan at index 1)"):
        est.add_arrays([0.5, 0.5], [1.0, math.nan], [0.5, 0.5])
    with _raises("`p_target` must have the shape of `p_log` (2,) (got (3,))"):
        est.add_arrays([0.5, 0.5], [1.0, 1.0], [0.5, 0.5, 0.5])
    with _raises("`p_log` must be 1-D (got shape (1, 2))"):
        est.add_arrays([[0.5, 0.5]], [1.0, 1.0], [0.5, 0.5])
    assert est.n == 0


def test_weights_beyond_max_weight_or_overflowing() -> None:
    est = ips.Estimator(max_weight=10.0)
    with _raises("importance weight `p_target / p_log` must be <= `max_weight` 10 (got 20)"):
        est.add(0.05, 1.0, 1.0)
    with _raises("`max_weight` 10 (got 20 at index 1)"):
        est.add_arrays([0.5, 0.05], [1.0, 1.0], [0.5, 1.0])
    est.add(0.1, 1.0, 1.0)  # exactly max_weight is fine
    message = "importance weight `p_target / p_log` or reward too large to square"
    with _raises(f"{message} (got w = 1e+300)"):
        ips.Estimator().add(1e-300, 1.0, 1.0)
    with _raises(f"{message} (got w = 1 at index 1)"):
        dr.Estimator().add_arrays([0.5, 0.5], [1.0, 1e200], [0.5, 0.5], [0.0, 0.0], [0.0, 0.0])


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: clipped_ips.Estimator(0.0), "`clip` must be > 0 (got 0)"),
        (lambda: switch_dr.Estimator(-1.0), "`tau` must be >= 0 (got -1)"),
        (lambda: dr_os.Estimator(0.0), "`lambda_` must be > 0 (got 0)"),
        (lambda: ips.Estimator(max_weight=0.5), "`max_weight` must be >= 1 (got 0.5)"),
        (
            lambda: ips.Estimator(reward_range=(1.0, 0.0)),
            "`reward_range` must have low < high (got (1, 0))",
        ),
        (lambda: ips.Estimator(reward_range=(0.0, math.nan)), "`reward_range` must be finite"),
    ],
)
def test_settings_are_checked(make: Any, message: str) -> None:
    with _raises(message):
        make()


def test_interval_arguments_are_checked() -> None:
    est = snips.Estimator()
    est.add_arrays([0.5, 0.5, 0.25], [1.0, 0.0, 1.0], [0.5, 0.5, 0.5])
    with _raises("`alpha` must be in (0, 1) (got 1.5)"):
        est.interval(alpha=1.5)
    with _raises("`method` must be one of 'cressie_read', 'gaussian' for snips (got 'bernstein')"):
        est.interval(method="bernstein")
    with _raises("`method` must be one of 'gaussian' for sndr (got 'cressie_read')"):
        sndr.Estimator().interval(method="cressie_read")
    with _raises("`reward_range` must be set for a cressie_read interval"):
        est.interval(method="cressie_read")
    with _raises("`max_weight` must be set for a bernstein interval: ips weights are otherwise"):
        ips.Estimator(reward_range=(0, 1)).interval(method="bernstein")
    # Clipping bounds the weights, so no max_weight is needed.
    assert clipped_ips.Estimator(3.0, reward_range=(0, 1)).interval(method="bernstein").width == 1


def test_bootstrap_arguments_are_checked() -> None:
    est = dr.Estimator()
    batch = {"p_log": [0.5], "reward": [1.0], "p_target": [0.5], "r_hat": [0.5]}
    with _raises("`batch` must hold p_log, reward, p_target, r_hat, v_hat for dr (missing v_hat)"):
        est.bootstrap_interval(batch)
    with _raises("`batch` must hold p_log, reward, p_target, r_hat, v_hat for dr (missing v_hat)"):
        est.add_batch(batch)
    batch["v_hat"] = [0.5]
    with _raises("`n_resamples` must be a positive integer (got 0)"):
        est.bootstrap_interval(batch, n_resamples=0)
    with pytest.raises(TypeError, match="`rng` must be a numpy Generator or a non-negative int"):
        est.bootstrap_interval(batch, rng=0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="`rng` must be a numpy Generator"):
        bootstrap.generator(-1)
    assert isinstance(bootstrap.generator(np.random.default_rng(0)), np.random.Generator)


def test_cressie_read_weight_range_is_checked() -> None:
    with _raises("`weight_range` must satisfy w_min < 1 < w_max (got (0, 0.5))"):
        cressie_read.interval(
            n=1,
            sum_w=1.0,
            sum_w2=1.0,
            sum_wr=1.0,
            sum_w2r=1.0,
            sum_w2r2=1.0,
            reward_range=(0.0, 1.0),
            weight_range=(0.0, 0.5),
        )
