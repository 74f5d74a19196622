"""Leave-one-namespace-out feature importance on seeded synthetic logs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from bandit.events import Action
from bandit.features import action_lines, adf_example
from rewards.ope import importance
from rewards.ope.errors import EvaluationCancelled, EvaluationError
from rewards.ope.logged import LoggedEvent

ARGS = "--cb_explore_adf --epsilon 0.1 --cb_type mtr -q ::"
ITEMS = ("a", "b", "c")


def _log(n: int, seed: int) -> list[LoggedEvent]:
    """Uniform logging over three items, one of which is `good`: the reward is 1 exactly when
    the chosen item is the good one. All the signal is in the `quality` action namespace;
    `color` (action), `noise` and `weather` (context) are independent of the reward."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        context = [
            {"noise": {"n": f"v{int(rng.integers(5))}"}},
            {"weather": {"w": "sun" if rng.random() < 0.5 else "rain"}},
        ]
        good = int(rng.integers(3))
        actions = [
            Action(
                item,
                [
                    {"quality": {"q": "good" if j == good else "plain"}},
                    {"color": {"c": f"c{int(rng.integers(4))}"}},
                ],
            )
            for j, item in enumerate(ITEMS)
        ]
        chosen = int(rng.integers(3))
        reward = 1.0 if chosen == good else 0.0
        example = tuple(adf_example(context, action_lines(actions)))
        out.append(LoggedEvent(f"e{i}", None, (1 / 3, 1 / 3, 1 / 3), chosen, reward, example))
    return out


def _batches(events: Sequence[LoggedEvent], size: int = 250) -> importance.Batches:
    return lambda: (events[i : i + size] for i in range(0, len(events), size))


def test_namespaces_and_their_removal() -> None:
    example = ("shared |user a=1 b:2 |time h=9", "|item id=x |color c=red", "|item id=y")
    assert importance.namespaces(example) == {
        ("context", "user"),
        ("context", "time"),
        ("action", "item"),
        ("action", "color"),
    }
    assert importance.without(example, "context", "user") == (
        "shared |time h=9",
        "|item id=x |color c=red",
        "|item id=y",
    )
    assert importance.without(example, "action", "item") == (
        "shared |user a=1 b:2 |time h=9",
        "|color c=red",
        "|_",
    )


def test_scores_are_shares_of_the_positive_drops() -> None:
    assert importance.scores([0.3, 0.1, -0.2, math.nan]) == pytest.approx([75.0, 25.0, 0.0, 0.0])
    assert importance.scores([-0.1, 0.0]) == [0.0, 0.0]


@pytest.mark.parametrize("args", [ARGS, "--cb_explore_adf --epsilon 1 -q ::"])
def test_the_namespace_that_carries_the_signal_scores_highest(args: str) -> None:
    events = _log(600, seed=7)
    result = importance.importance(
        _batches(events), args, total=len(events), reward_range=(0.0, 1.0), max_weight=3.0
    )
    names = [(s.kind, s.namespace) for s in result.scores]
    assert set(names) == {
        ("context", "noise"),
        ("context", "weather"),
        ("action", "quality"),
        ("action", "color"),
    }
    top = result.scores[0]
    assert (top.kind, top.namespace) == ("action", "quality")
    # Without the quality the policy cannot beat chance (1/3); with it, it finds the good item,
    # even when the arguments explore uniformly (the model's choice is scored).
    assert top.value == pytest.approx(1 / 3, abs=0.06)
    assert result.full_value > 0.8
    assert top.score > 90.0
    assert sum(s.score for s in result.scores) == pytest.approx(100.0)
    assert [s.score for s in result.scores] == sorted(
        (s.score for s in result.scores), reverse=True
    )
    for noise in result.scores[1:]:
        assert abs(noise.drop) < 0.05


def test_cancel_and_bad_arguments() -> None:
    events = _log(50, seed=1)

    class Cancelled:
        def is_set(self) -> bool:
            return True

    with pytest.raises(EvaluationCancelled):
        importance.importance(
            _batches(events),
            ARGS,
            total=50,
            reward_range=(0.0, 1.0),
            max_weight=3.0,
            cancel=Cancelled(),
        )
    with pytest.raises(
        EvaluationError, match="`arguments`: unrecognised option '--no_such_option'"
    ):
        importance.importance(
            _batches(events),
            "--cb_explore_adf --no_such_option",
            total=50,
            reward_range=(0.0, 1.0),
            max_weight=3.0,
        )
    empty = importance.importance(lambda: [], ARGS, total=0, reward_range=(0, 1), max_weight=1.0)
    assert (empty.n, empty.scores) == (0, ())
