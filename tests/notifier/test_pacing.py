"""Dose-aware pacing (`notifier.pacing`): the top-k rule on hand-built days, the pmf it serves,
the day's remaining decision points it weighs (`notifier.schedule.later_today`), and the
random-time rule served at the dose."""

from __future__ import annotations

import doctest
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from bandit.events import Action, Features
from bandit.features import action_lines
from integrations.profiles import Profile
from integrations.timing import ACTIONS, SEND, WAIT
from notifier import pacing
from notifier.pacing import Paced, RandomTime, among_best, at_point
from notifier.schedule import later_today, slot
from policies import random, rule
from policies.serving import LoggingOnly

LINES = action_lines(ACTIONS)


class ByHour:
    """A hand-built policy: P(send) by the context's local hour (0.5 for an hour not listed)."""

    name = "by-hour"
    model_key = "timing:by-hour"
    model_version = 7

    def __init__(self, send: dict[int, float]) -> None:
        self.send = send

    def pmf(
        self, context: Features, actions: Sequence[Action], action_lines: Sequence[str]
    ) -> list[float]:
        p = self.send.get(_hour(context), 0.5)
        return [p if a.id == SEND else 1.0 - p for a in actions]


def _at(hour: int) -> Features:
    return [{"clock": {"hour": f"h{hour:02d}"}}]


def _hour(context: Features) -> int:
    return int(str(context[0]["clock"]["hour"])[1:])  # type: ignore[index]


def _pmf(send: dict[int, float], now: int, later: Sequence[int], pushes_left: int) -> list[float]:
    paced = Paced(
        ByHour(send),
        send=SEND,
        ahead=[_at(h) for h in later],
        pushes_left=pushes_left,
        floor=0.01,
    )
    return paced.pmf(_at(now), ACTIONS, LINES)


def test_the_rule_counts_the_moments_ahead_that_beat_now() -> None:
    assert doctest.testmod(pacing).failed == 0
    assert among_best(0.6, [0.9, 0.2, 0.7], pushes_left=2) is False  # 0.9 and 0.7 beat it
    assert among_best(0.6, [0.9, 0.2, 0.7], pushes_left=3) is True
    assert among_best(0.6, [0.2, 0.1], pushes_left=1) is True
    assert among_best(0.6, [0.6, 0.6, 0.6], pushes_left=1) is True  # ties count for now
    assert among_best(0.6, [], pushes_left=1) is True
    with pytest.raises(ValueError, match="`pushes_left` must be at least 1"):
        among_best(0.6, [0.7], pushes_left=0)


def test_a_morning_push_waits_for_the_better_hours_ahead() -> None:
    # The model likes 08:00 (0.9), and likes 12:00 and 19:00 more (0.95, 0.99).
    day = {8: 0.9, 12: 0.95, 19: 0.99, 21: 0.3}
    later = [9, 12, 15, 19, 21]
    # Two pushes left, two better moments ahead: send keeps only the floor; wait the rest.
    assert _pmf(day, 8, later, pushes_left=2) == pytest.approx([0.01, 0.99])
    # Three left: 08:00 is among the three best of the day left, so the policy's pmf stands.
    assert _pmf(day, 8, later, pushes_left=3) == pytest.approx([0.9, 0.1])
    # At 12:00 with one push left, 19:00 is better: hold; at 19:00 nothing ahead beats it.
    assert _pmf(day, 12, [15, 19, 21], pushes_left=1) == pytest.approx([0.01, 0.99])
    assert _pmf(day, 19, [21], pushes_left=1) == pytest.approx([0.99, 0.01])
    # Fewer points left than pushes: every one of them is among the best.
    assert _pmf(day, 15, [19, 21], pushes_left=3) == pytest.approx([0.5, 0.5])


def test_the_served_pmf_never_drops_below_the_floor_nor_lifts_send() -> None:
    # Held back where send is already below the floor: unchanged (never raised to the floor).
    assert _pmf({8: 0.005, 12: 0.9}, 8, [12], pushes_left=1) == pytest.approx([0.005, 0.995])
    # A uniform policy scores every moment alike: served as it is.
    assert _pmf({}, 8, [9, 10, 11], pushes_left=1) == pytest.approx([0.5, 0.5])
    # A certain send now is never beaten (ties count for now); a near-certain one can be.
    assert _pmf({8: 1.0, 12: 1.0}, 8, [12], pushes_left=1) == pytest.approx([1.0, 0.0])
    assert _pmf({8: 0.999, 12: 1.0}, 8, [12], pushes_left=1) == pytest.approx([0.01, 0.99])


def test_the_wrapper_logs_as_the_policy_it_paces() -> None:
    inner = ByHour({})
    paced = Paced(inner, send=SEND, ahead=[], pushes_left=1, floor=0.01)
    assert (paced.name, paced.model_key, paced.model_version) == ("by-hour", "timing:by-hour", 7)
    with pytest.raises(ValueError, match="`pushes_left` must be at least 1"):
        Paced(inner, send=SEND, ahead=[], pushes_left=0, floor=0.01)
    with pytest.raises(ValueError, match=r"`floor` must be in \[0, 0.5\]"):
        Paced(inner, send=SEND, ahead=[], pushes_left=1, floor=0.6)
    missing_send = Paced(inner, send="push", ahead=[_at(9)], pushes_left=1, floor=0.01)
    with pytest.raises(ValueError, match="`actions` must include 'push'"):
        missing_send.pmf(_at(8), ACTIONS, LINES)
    assert [a.id for a in ACTIONS] == [SEND, WAIT]


def test_later_today_lists_the_awake_points_after_this_one() -> None:
    paris = Profile("p", timezone="Europe/Paris")
    morning = datetime(2026, 12, 2, 7, 0, tzinfo=UTC)  # 08:00 in Paris
    point = slot(paris, morning, 30)
    later = later_today(paris, point, 30)
    assert len(later) == 27  # 08:30 to 21:30 (the default night starts at 22:00)
    assert later[0] == morning + timedelta(minutes=30)
    assert paris.local(later[-1]).strftime("%H:%M") == "21:30"
    last = slot(paris, later[-1], 30)
    assert later_today(paris, last, 30) == []
    # Quiet hours end the day earlier; an interval of 2 h steps by 2 h.
    quiet = Profile("q", timezone="Europe/Paris", quiet_start="20:00", quiet_end="07:00")
    hours = [quiet.local(at).hour for at in later_today(quiet, slot(quiet, morning, 120), 120)]
    assert hours == [10, 12, 14, 16, 18]


def _random_time(points_left: int, pushes_left: int, floor: float = 0.01) -> list[float]:
    inner = rule.Policy(rule.RANDOM_TIME, "timing:random-time", rule.RANDOM_TIME)
    served = RandomTime(
        inner, send=SEND, points_left=points_left, pushes_left=pushes_left, floor=floor
    )
    return served.pmf(_at(8), ACTIONS, LINES)


def test_random_time_sends_with_probability_pushes_left_over_points_left() -> None:
    assert _random_time(28, 3) == pytest.approx([3 / 28, 25 / 28])
    assert _random_time(4, 2) == pytest.approx([0.5, 0.5])
    # Clipped to [floor, 1 - floor]: both actions stay evaluable.
    assert _random_time(200, 1) == pytest.approx([0.01, 0.99])
    assert _random_time(2, 3) == pytest.approx([0.99, 0.01])
    # Off the timing surface's decision points the rule has no dose to follow: uniform.
    inner = rule.Policy(rule.RANDOM_TIME, "tips:random-time", rule.RANDOM_TIME)
    assert inner.pmf(_at(8), ACTIONS, LINES) == pytest.approx([0.5, 0.5])
    served = RandomTime(inner, send=SEND, points_left=3, pushes_left=1, floor=0.01)
    assert (served.name, served.model_key) == (rule.RANDOM_TIME, "tips:random-time")
    with pytest.raises(ValueError, match="`points_left` must be at least 1"):
        RandomTime(inner, send=SEND, points_left=0, pushes_left=1, floor=0.01)
    with pytest.raises(ValueError, match="`pushes_left` must be at least 1"):
        RandomTime(inner, send=SEND, points_left=3, pushes_left=0, floor=0.01)
    with pytest.raises(ValueError, match=r"`floor` must be in \[0, 0.5\]"):
        RandomTime(inner, send=SEND, points_left=3, pushes_left=1, floor=0.7)
    with pytest.raises(ValueError, match="`actions` must be 'push' and one other"):
        RandomTime(inner, send="push", points_left=3, pushes_left=1, floor=0.01).pmf(
            _at(8), ACTIONS, LINES
        )


def _pushed_at(policy: rule.Policy | random.Policy, days: int, seed: int) -> np.ndarray:
    """The share of days each of 28 points pushed, 3 pushes a day, each point served as the
    timing surface serves it (`at_point`, no floor) and drawn from its pmf."""
    rng = np.random.default_rng(seed)
    points, dose = 28, 3
    day = [_at(8 + i // 2) for i in range(points)]
    pushed = np.zeros(points)
    for _ in range(days):
        left = dose
        for i in range(points):
            if left == 0:
                break
            served = at_point(policy, send=SEND, ahead=day[i + 1 :], pushes_left=left, floor=0.0)
            if rng.random() < served.pmf(day[i], ACTIONS, LINES)[0]:
                pushed[i] += 1
                left -= 1
        assert left == 0  # the whole dose, every day
    return pushed / days


def test_random_time_spreads_the_dose_uniformly_over_the_day() -> None:
    """Drawn point by point, k / n spends exactly the dose at a uniformly random k of the n
    points; the uniform `random` policy (a coin flip at each point) spends it by mid-morning."""
    share = _pushed_at(rule.Policy(rule.RANDOM_TIME, "timing:rt", rule.RANDOM_TIME), 4000, 13)
    # Each point's share is 3 / 28 = 0.107; 4,000 days put its standard error at 0.005.
    assert np.abs(share - 3 / 28).max() < 0.025
    assert share[:14].sum() == pytest.approx(share[14:].sum(), abs=0.15)
    coin = _pushed_at(random.Policy("random", "timing:random"), 1000, 13)
    assert coin[:14].sum() > 0.99 * 3  # the whole dose before 15:00
    assert coin[:6].sum() > 2.0  # most of it before 11:00


def test_a_decision_point_serves_the_random_time_rule_at_the_dose_and_paces_the_rest() -> None:
    ahead = [_at(h) for h in (9, 10, 11)]
    random_time = rule.Policy(rule.RANDOM_TIME, "timing:random-time", rule.RANDOM_TIME)
    for served in (random_time, LoggingOnly(random_time, "timing")):
        point = at_point(served, send=SEND, ahead=ahead, pushes_left=2, floor=0.01)
        assert isinstance(point, RandomTime)
        assert point.pmf(_at(8), ACTIONS, LINES) == pytest.approx([0.5, 0.5])  # 2 of 4 points
    for other in (
        random.Policy("random", "timing:random"),
        rule.Policy("urgent", "timing:urgent", "most-urgent-todo"),
        ByHour({}),
    ):
        point = at_point(other, send=SEND, ahead=ahead, pushes_left=2, floor=0.01)
        assert isinstance(point, Paced)
