"""A policy's reward over time: buckets of any width merge exactly into coarser series."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from rewards.ope.errors import EvaluationError
from rewards.ope.results import Bucket
from rewards.ope.runs import run
from rewards.ope.targets import Online, Uniform
from rewards.ope.timeseries import estimate, overall, series
from tests.rewards.synthetic import START, events

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def _bucket(minute: int, terms: list[float]) -> Bucket:
    return Bucket(T0 + timedelta(minutes=minute), len(terms), sum(terms), sum(t * t for t in terms))


def test_estimate_by_hand() -> None:
    value, ci = estimate(4, 2.0, 2.0)  # terms 1, 1, 0, 0
    assert value == 0.5
    # variance of the mean: (Σt² - (Σt)²/n) / (n-1) / n = (2 - 1) / 3 / 4
    half = 1.959963984540054 * math.sqrt(1 / 12)
    assert ci.low == pytest.approx(0.5 - half) and ci.high == pytest.approx(0.5 + half)
    assert math.isnan(estimate(0, 0.0, 0.0)[0])
    assert estimate(1, 1.0, 1.0)[1].low == -math.inf


def test_rolling_and_expanding_points() -> None:
    buckets = [_bucket(0, [1.0, 0.0]), _bucket(5, [1.0]), _bucket(20, [0.0, 0.0])]
    end = T0 + timedelta(minutes=30)
    rolling = series(
        buckets, bucket_seconds=300, start=T0, end=end, interval_seconds=600, window="rolling"
    )
    assert [p.start for p in rolling] == [T0 + timedelta(minutes=m) for m in (0, 10, 20)]
    assert [p.n for p in rolling] == [3, 0, 2]
    assert rolling[0].value == pytest.approx(2 / 3)
    assert math.isnan(rolling[1].value)
    assert rolling[2].value == 0.0
    expanding = series(buckets, bucket_seconds=300, start=T0, end=end, interval_seconds=600)
    assert [p.n for p in expanding] == [3, 3, 5]
    assert [p.value for p in expanding] == pytest.approx([2 / 3, 2 / 3, 2 / 5])
    # A range that starts inside a bucket starts at that bucket; buckets after `end` are out.
    late = series(
        buckets,
        bucket_seconds=300,
        start=T0 + timedelta(minutes=7),
        end=T0 + timedelta(minutes=20),
        interval_seconds=300,
    )
    assert [p.n for p in late] == [1, 1, 1]


@pytest.mark.parametrize(
    ("interval", "start", "end", "message"),
    [
        (450, T0, T0 + timedelta(hours=1), "whole number of buckets of 5 minutes"),
        (300, T0 + timedelta(hours=1), T0, "must be before"),
        (300, T0, T0 + timedelta(days=365), "at most"),
    ],
)
def test_bad_series_names_the_argument(
    interval: int, start: datetime, end: datetime, message: str
) -> None:
    with pytest.raises(EvaluationError, match=message):
        series([], bucket_seconds=300, start=start, end=end, interval_seconds=interval)


def test_buckets_of_a_run_add_up_to_its_ips_estimate() -> None:
    log = events(600)  # one event a second from START
    result = run(
        [log[:250], log[250:]],
        [Online(), Uniform()],
        total=len(log),
        reward_range=(0.0, 1.0),
        max_weight=3.0,
        bucket_seconds=60,
    )
    assert result.bucket_seconds == 60
    for policy in result.policies:
        assert len(policy.over_time) == 10
        assert all(b.start.second == 0 for b in policy.over_time)
        n, value, ci = overall(
            policy.over_time, start=START, end=START + timedelta(minutes=10), alpha=result.alpha
        )
        ips = policy.estimate("ips")
        assert n == 600
        assert value == pytest.approx(ips.value)
        assert (ci.low, ci.high) == pytest.approx((ips.gaussian.low, ips.gaussian.high))
        last = series(
            policy.over_time,
            bucket_seconds=60,
            start=START,
            end=START + timedelta(minutes=10),
            interval_seconds=180,
        )[-1]
        assert last.n == 600 and last.value == pytest.approx(ips.value)
