"""Is it learning? Each warning of `rewards.doctor` on a seeded log made to have that problem (and
no other), on SQLite and on PostgreSQL; the figures against hand counts; the bounded sample."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import timedelta

import numpy as np
import pytest

from bandit.events import Features
from bandit.features import adf_example
from bandit.store import Store
from rewards.distinct import Distinct, stable_hash
from rewards.doctor import Diagnosis, ValueEstimate, diagnose
from rewards.doctor.features import looks_like_time, parse_line
from rewards.estimators import snips
from rewards.estimators.results import Interval
from tests.conftest import Backend
from tests.rewards.doctor_log import MODEL, T0, WINDOW, Log, N, healthy_context


@pytest.fixture
def log(backend: Backend) -> Iterator[Log]:
    store = Store.connect(backend.database_url, pool_size=2)
    yield Log(store, np.random.default_rng(20261102))
    store.engine.dispose()


def check(
    log: Log,
    *,
    learns: Callable[[str], bool] = lambda p: p != "random",
    window: timedelta = WINDOW,
) -> Diagnosis:
    now = T0 + window + timedelta(hours=1)
    return diagnose(log.store, "tips", T0, T0 + window, now=now, learns=learns)


def codes(diagnosis: Diagnosis) -> list[tuple[str, str | None, str | None]]:
    return [(w.code, w.namespace, w.feature) for w in diagnosis.warnings]


# --- the healthy log and its figures -----------------------------------------------------------


def test_a_healthy_log_has_no_warnings_and_hand_counted_figures(log: Log) -> None:
    made = log.healthy()
    got = check(log)
    assert codes(got) == []
    assert (got.decisions, got.sampled, got.activated) == (N, N, N)
    rewarded = sum(1 for i in range(N) if i % 3 != 0)
    assert got.rewarded_share == pytest.approx(rewarded / N)
    assert got.default_reward_share == pytest.approx((N - rewarded) / N)
    assert got.late_reward_share == 0.0
    explored = sum(1 for d in made if d.chosen_index != 0)
    assert got.exploration_share == pytest.approx(explored / N)
    assert got.min_propensity == pytest.approx(0.1)
    assert (got.model_key, got.model_version) == (MODEL, 3)
    assert got.model_updated_at == made[-1].created_at + timedelta(minutes=3)
    assert got.model_age_seconds is not None and got.model_age_seconds > 0
    # online = the mean learned reward (its weights are all 1); baseline = SNIPS of candidate 0
    learned = [log.store.get(d.event_id) for d in made]
    rewards = [entry.learned_reward for entry in learned if entry is not None]
    assert got.online is not None and got.online.n == N
    assert got.online.value == pytest.approx(float(np.mean(rewards)))
    assert got.online.low is not None and got.online.low < got.online.value
    first = [(r, d.propensity) for d, r in zip(made, rewards, strict=True) if d.chosen_index == 0]
    weights = [1 / p for _, p in first]
    assert got.baseline is not None
    assert got.baseline.value == pytest.approx(sum(r / p for r, p in first) / sum(weights) * 1.0)
    assert got.online.effective_n == pytest.approx(N)
    assert got.baseline.effective_n == pytest.approx(
        sum(weights) ** 2 / sum(w * w for w in weights)
    )


def test_no_decisions_says_so(log: Log) -> None:
    got = check(log)
    assert codes(got) == [("no_decisions", None, None)]
    assert got.rewarded_share is None and got.online is None and got.model_key is None


def test_a_baseline_resting_on_few_alike_rewards_keeps_an_honest_interval(log: Log) -> None:
    # A learning policy that almost never picks the first candidate: of 120 decisions, 4 did,
    # each unrewarded. The delta method's interval for the baseline collapses to [0, 0] there;
    # the checkup's must stay wide, say what the estimate rests on, and match the Gaussian one
    # where the decisions are many (the online policy).
    pmf = (0.02, 0.49, 0.49)
    rows: list[tuple[float, float, float]] = []  # (p_log, reward, first)
    for i in range(N):
        chosen = 0 if i % 30 == 0 else 1 + i % 2
        decision = log.decide(i, pmf=pmf, chosen=chosen)
        value = 0.0 if chosen == 0 else float(log.rng.random() < 0.5)
        log.reward(decision, value, after=timedelta(minutes=2))
        log.learn(decision, value)
        rows.append((pmf[chosen], value, float(chosen == 0)))
    log.snapshot(T0 + WINDOW - timedelta(hours=1))
    p_log, reward, first = (np.array(column) for column in zip(*rows, strict=True))
    gaussian = snips.Estimator()
    gaussian.add_arrays(p_log, reward, first)
    assert gaussian.estimate().ci == Interval(0.0, 0.0)  # what a Gaussian interval would claim

    got = check(log)
    assert got.baseline is not None and got.online is not None
    assert (got.baseline.value, got.baseline.n) == (0.0, N)
    assert got.baseline.effective_n == pytest.approx(4.0)
    assert got.baseline.low == 0.0
    assert got.baseline.high is not None and got.baseline.high > 0.3
    online = snips.Estimator()
    online.add_arrays(p_log, reward, p_log)
    ci = online.estimate().ci
    assert got.online.effective_n == pytest.approx(N)
    assert got.online.low == pytest.approx(ci.low, abs=0.01)
    assert got.online.high == pytest.approx(ci.high, abs=0.01)


# --- features --------------------------------------------------------------------------------


def test_identifier_feature(log: Log) -> None:
    log.healthy(context=lambda i: [*healthy_context(i), {"user": {"id": f"u-{i:05d}"}}])
    got = check(log)
    assert codes(got) == [("identifier_feature", "user", "id")]
    assert "u-00000" in got.warnings[0].message and "drop it" in got.warnings[0].action


def test_numeric_identifier_but_not_a_continuous_measure(log: Log) -> None:
    log.healthy(
        context=lambda i: [
            *healthy_context(i),
            {"account": {"number": 7_000_000 + 13 * i, "score": float(i) / 7}},
        ]
    )
    assert codes(check(log)) == [("identifier_feature", "account", "number")]


def test_timestamp_features(log: Log) -> None:
    def context(i: int) -> Features:
        at = T0 + timedelta(minutes=5 * i)
        return [
            *healthy_context(i),
            {"event": {"at": at.isoformat(), "epoch": at.timestamp(), "hour": at.hour}},
        ]

    log.healthy(context=context)
    got = check(log)
    assert sorted(codes(got)) == [
        ("timestamp_feature", "event", "at"),
        ("timestamp_feature", "event", "epoch"),
    ]
    assert all("part of day" in w.action for w in got.warnings)


def test_rare_feature(log: Log) -> None:
    log.healthy(
        context=lambda i: [*healthy_context(i), *([{"promo": {"code": "x"}}] if i == 7 else [])]
    )
    got = check(log)
    assert codes(got) == [("rare_feature", "promo", "code")]
    assert "0.83%" in got.warnings[0].message


# --- rewards -----------------------------------------------------------------------------------


def test_missing_rewards(log: Log) -> None:
    log.healthy(rewarded=lambda i: i % 40 == 0)  # 3 of 120
    got = check(log)
    assert codes(got) == [("few_rewards", None, None)]
    assert got.rewarded_share == pytest.approx(3 / N)
    assert got.default_reward_share == pytest.approx(117 / N)
    assert "send 0 explicitly" in got.warnings[0].action


def test_late_rewards(log: Log) -> None:
    for i in range(N):
        decision = log.decide(i)
        late = i % 2 == 0
        log.reward(decision, 1.0, after=timedelta(hours=3) if late else timedelta(minutes=1))
        log.learn(decision, 0.0 if late else 1.0)
    log.snapshot(T0 + WINDOW)
    got = check(log)
    assert codes(got) == [("late_rewards", None, None)]
    assert got.late_reward_share == pytest.approx(0.5)
    assert got.rewarded_share == pytest.approx(0.5)


# --- the model ---------------------------------------------------------------------------------


def test_stale_model(log: Log) -> None:
    log.healthy()  # published just after its last decision: fine
    # Another model's last version is from its first half hour; its rewards came for 20 hours.
    stale = Log(log.store, np.random.default_rng(3))
    for i in range(N):
        at = T0 + timedelta(minutes=15 * i)
        decision = stale.decide(i, model_key="tips:vw-squarecb", policy="vw-squarecb", at=at)
        stale.reward(decision, 1.0, after=timedelta(minutes=1))
    stale.snapshot(T0 + timedelta(minutes=30), model_key="tips:vw-squarecb")
    got = check(log, window=timedelta(hours=48))
    assert codes(got) == [("stale_model", None, None)]
    assert "tips:vw-squarecb" in got.warnings[0].message
    assert "oo learner" in got.warnings[0].action
    # less than a day of rewards is not yet a day without change
    assert codes(check(log, window=timedelta(hours=20))) == []


def test_a_model_that_never_published_is_stale_once_rewards_span_a_day(log: Log) -> None:
    for i in range(N):
        decision = log.decide(i, at=T0 + timedelta(minutes=15 * i))
        log.reward(decision, 1.0, after=timedelta(minutes=1))
    got = check(log, window=timedelta(hours=48))
    assert codes(got) == [("stale_model", None, None)]
    assert "never published" in got.warnings[0].message
    assert got.model_version == 3  # the highest logged version when none was published


def test_a_policy_without_a_model_is_never_stale(log: Log) -> None:
    for i in range(N):
        decision = log.decide(
            i,
            pmf=(1 / 3, 1 / 3, 1 / 3),
            policy="random",
            model_key="tips:random",
            at=T0 + timedelta(minutes=15 * i),
        )
        log.reward(decision, 1.0, after=timedelta(minutes=1))
    got = check(log, window=timedelta(hours=48))
    assert codes(got) == []
    assert got.exploration_share == 0.0  # a uniform pmf: every action is an argmax


# --- exploration ---------------------------------------------------------------------------


def test_zero_exploration(log: Log) -> None:
    log.healthy(pmf=(1.0, 0.0, 0.0), chosen=0)
    got = check(log)
    assert codes(got) == [("no_exploration", None, None)]
    assert got.exploration_share == 0.0
    assert got.min_propensity == 1.0


def test_min_propensity_is_the_smallest_logged_and_below_the_floor_warns(log: Log) -> None:
    smallest = 0.000_37
    made = log.healthy()
    log.decide(N, pmf=(1 - 2 * smallest, smallest, smallest), chosen=2)
    got = check(log)
    assert got.min_propensity == smallest
    assert min(d.propensity for d in made) == pytest.approx(0.1)
    assert codes(got) == [("low_propensity", None, None)]
    assert "2,703" in got.warnings[0].message  # 1 / 0.00037


# --- bounded work ------------------------------------------------------------------------------


def test_the_sample_is_bounded_and_the_counts_stay_exact(log: Log) -> None:
    log.healthy(n=600, rewarded=lambda i: i % 4 != 0)
    seen: list[tuple[int, int]] = []
    got = diagnose(
        log.store,
        "tips",
        T0,
        T0 + timedelta(days=3),
        now=T0 + timedelta(days=3),
        learns=lambda _: True,
        sample=120,
        on_progress=lambda done, total: seen.append((done, total)),
    )
    assert got.decisions == 600 and got.sampled == 120
    assert got.rewarded_share == pytest.approx(450 / 600)  # exact, not from the sample
    assert seen[0] == (0, 120) and seen[-1] == (120, 120)
    assert got.online is not None and got.online.n == 120


# --- the pieces ------------------------------------------------------------------------------


def test_distinct_is_exact_up_to_k_and_close_beyond() -> None:
    small = Distinct(k=64)
    for i in range(500):
        small.add(stable_hash(f"v{i % 64}"))
    assert small.count() == 64.0
    big = Distinct(k=1024)
    for i in range(50_000):
        big.add(stable_hash(f"v{i}"))
    assert big.count() == pytest.approx(50_000, rel=0.1)
    with pytest.raises(ValueError, match="`k` must be at least 3"):
        Distinct(k=2)


def test_parse_line_reads_our_featurizer() -> None:
    line = adf_example([{"user": {"age": 31, "tier": "gold", "at": "2026-11-25T09:30:00Z"}}], [])[0]
    parsed = {(p.namespace, p.name): p for p in parse_line(line)}
    assert parsed[("user", "age")].number == 31.0
    assert parsed[("user", "tier")].value == "gold"
    assert parsed[("user", "at")].time_like
    assert not looks_like_time("h09", None) and looks_like_time("1764000000123", None)


def test_docstring_examples_run() -> None:
    import doctest

    from rewards import distinct
    from rewards.doctor import features

    for module in (distinct, features):
        assert doctest.testmod(module).failed == 0


@pytest.mark.parametrize(
    ("effective_n", "effectively"),
    [(None, None), (13.4, 13), (3_999.6, None), (4_000.0, None)],
)
def test_an_estimate_says_it_rests_on_fewer_decisions_only_when_it_does(
    effective_n: float | None, effectively: int | None
) -> None:
    estimate = ValueEstimate(value=0.1, low=0.0, high=0.2, n=4_000, effective_n=effective_n)
    assert estimate.effectively == effectively
