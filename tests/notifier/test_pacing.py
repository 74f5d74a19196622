"""Dose-aware pacing (`notifier.pacing`): the top-k rule on hand-built days, the pmf it serves,
and the day's remaining decision points it weighs (`notifier.schedule.later_today`)."""

from __future__ import annotations

import doctest
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from bandit.events import Action, Features
from bandit.features import action_lines
from integrations.profiles import Profile
from integrations.timing import ACTIONS, SEND, WAIT
from notifier import pacing
from notifier.pacing import Paced, among_best
from notifier.schedule import later_today, slot

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
