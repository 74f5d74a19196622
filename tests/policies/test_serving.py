"""How the surface configuration shapes serving: exploration, apprentice and logging-only."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bandit.events import Action, Features
from bandit.surface_config import DEFAULT_EXPLORATION
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
    # Other explorers keep their own pmf, with the share mixed in as a uniform floor.
    square = serving.serving(
        inner, "personalizer", mode="Online", exploration=0.4, args="--cb_explore_adf --squarecb"
    )
    assert _pmf(square) == pytest.approx([0.16, 0.46, 0.22, 0.16])
    unset = serving.serving(
        inner, "personalizer", mode="Online", exploration=None, args="--cb_explore_adf --regcb"
    )
    assert min(_pmf(unset)) == pytest.approx(
        (1 - DEFAULT_EXPLORATION) * 0.1 + DEFAULT_EXPLORATION / 4
    )
    assert (
        serving.serving(inner, "personalizer", mode="Online", exploration=0.5, args=None) is inner
    )  # random and rule policies keep their own exploration


def test_floor_mixes_a_uniform_share_into_the_explorers_pmf() -> None:
    policy = serving.Floor(Fixed([0.0, 0.9, 0.1, 0.0]), 0.2)
    assert _pmf(policy) == pytest.approx([0.05, 0.77, 0.13, 0.05])
    assert (policy.name, policy.model_key, policy.model_version) == (
        "fixed",
        "personalizer:fixed",
        7,
    )
    with pytest.raises(ValueError, match="`delta` must be in"):
        serving.Floor(Fixed([1.0]), -0.1)


@settings(max_examples=300, deadline=None)
@given(
    weights=st.lists(st.floats(0.0, 1.0), min_size=2, max_size=50).filter(lambda w: sum(w) > 0),
    delta=st.floats(0.0, 1.0),
)
def test_a_floored_pmf_sums_to_one_and_keeps_every_candidate_above_the_floor(
    weights: list[float], delta: float
) -> None:
    """Property: whatever the explorer's pmf (peaked, zero for some candidates), the served
    pmf is a distribution and gives every candidate at least delta / K."""
    total = sum(weights)
    base = [w / total for w in weights]
    actions = [Action(str(i)) for i in range(len(base))]
    lines = [f"|x i{i}" for i in range(len(base))]
    served = serving.Floor(Fixed(base), delta).pmf([], actions, lines)
    assert sum(served) == pytest.approx(1.0, abs=1e-12)
    assert min(served) >= delta / len(base) - 1e-15
