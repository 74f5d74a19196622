"""How the surface configuration shapes serving: exploration, apprentice and logging-only."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from bandit.events import Action, Features
from bandit.vw_args import VwArgsError
from policies import serving


class Fixed:
    """A policy with a fixed pmf."""

    name = "fixed"
    model_key = "personalizer:fixed"
    model_version = 7

    def __init__(self, pmf: list[float]) -> None:
        self._pmf = pmf

    def pmf(
        self, context: Features, actions: Sequence[Action], action_lines: Sequence[str]
    ) -> list[float]:
        return list(self._pmf)


ACTIONS = [Action("a"), Action("b"), Action("c"), Action("d")]


def _pmf(policy: serving.Policy) -> list[float]:
    return policy.pmf([], ACTIONS, ["|x a", "|x b", "|x c", "|x d"])


def test_arguments() -> None:
    args = "--cb_explore_adf --epsilon 0.2 --cb_type mtr -q ::"
    assert serving.epsilon_of(args) == 0.2
    assert serving.epsilon_of("--cb_explore_adf --epsilon=0.3") == 0.3
    assert serving.epsilon_of("--cb_explore_adf") is None
    assert serving.without_epsilon(args) == "--cb_explore_adf --cb_type mtr -q ::"
    assert serving.with_epsilon(args, 0.5) == "--cb_explore_adf --epsilon 0.5 --cb_type mtr -q ::"
    assert serving.with_epsilon("--cb_explore_adf -q ::", 0.1) == (
        "--cb_explore_adf --epsilon 0.1 -q ::"
    )
    assert serving.is_epsilon_greedy(args)
    assert not serving.is_epsilon_greedy("--cb_explore_adf --squarecb")
    assert serving.without_epsilon("--cb_explore_adf --epsilon=0.3 --quadratic ::") == (
        "--cb_explore_adf -q ::"
    )
    with pytest.raises(VwArgsError, match="--final_regressor reads or writes files"):
        serving.epsilon_of("--cb_explore_adf -q :: --final_regressor=/x")


def test_explore_mixes_epsilon_around_the_most_probable_action() -> None:
    policy = serving.Explore(Fixed([0.1, 0.6, 0.2, 0.1]), 0.4)
    assert _pmf(policy) == pytest.approx([0.1, 0.7, 0.1, 0.1])
    assert (policy.name, policy.model_key, policy.model_version) == (
        "fixed",
        "personalizer:fixed",
        7,
    )
    with pytest.raises(ValueError, match="`epsilon` must be in"):
        serving.Explore(Fixed([1.0]), 1.5)


def test_modes() -> None:
    inner = Fixed([0.1, 0.6, 0.2, 0.1])
    epsilon_args = "--cb_explore_adf --epsilon 0.2"
    apprentice = serving.serving(
        inner, "personalizer", mode="Apprentice", exploration=0.5, args=epsilon_args
    )
    assert _pmf(apprentice) == [1.0, 0.0, 0.0, 0.0]
    assert apprentice.model_key == inner.model_key  # learned into the policy's model

    logging = serving.serving(
        inner, "personalizer", mode="LoggingOnly", exploration=None, args=epsilon_args
    )
    assert _pmf(logging) == inner._pmf
    assert logging.model_key == "personalizer:LoggingOnly"

    online = serving.serving(
        inner, "personalizer", mode="Online", exploration=None, args=epsilon_args
    )
    assert online is inner
    square = serving.serving(
        inner, "personalizer", mode="Online", exploration=0.5, args="--cb_explore_adf --squarecb"
    )
    assert square is inner  # epsilon means nothing to SquareCB
