"""The reward-to-cost mapping: hand-computed labels, chosen by the loss function, and kept by a
model loaded from its bytes."""

import pytest

from bandit.costs import Costs
from bandit.features import adf_example
from bandit.model import LearnExample, Model
from bandit.vw_args import parse

LOGISTIC = "--cb_explore_adf --squarecb --cb_type mtr -q :: --loss_function logistic"
CONTEXT = [{"u": {"mood": "low"}}]
LINES = ["|a id=x", "|a id=y", "|a id=z"]
EXAMPLE = adf_example(CONTEXT, LINES)


@pytest.mark.parametrize(
    ("reward", "cost"),
    [(1.0, -1.0), (0.0, 1.0), (0.25, 0.5), (0.5, 0.0), (0.75, -0.5), (-1.0, 1.0), (2.0, -1.0)],
)
def test_clicks_map_a_click_to_minus_one_and_no_click_to_plus_one(
    reward: float, cost: float
) -> None:
    # 1 - 2r on r clipped to [0, 1]: a click is cost -1, no click +1, fractions in between.
    assert Costs.CLICKS.cost(reward) == cost


@pytest.mark.parametrize(("reward", "cost"), [(1.0, -1.0), (0.0, 0.0), (0.25, -0.25), (-1, 1)])
def test_regression_losses_learn_the_negated_reward(reward: float, cost: float) -> None:
    assert Costs.NEGATED.cost(reward) == cost


@pytest.mark.parametrize(
    ("args", "costs"),
    [
        ("--cb_explore_adf --squarecb", Costs.NEGATED),
        ("--cb_explore_adf --loss_function squared", Costs.NEGATED),
        ("--cb_explore_adf --loss_function quantile --quantile_tau 0.3", Costs.NEGATED),
        ("--cb_explore_adf --loss_function logistic", Costs.CLICKS),
        ("--cb_explore_adf --loss_function=hinge", Costs.CLICKS),
    ],
)
def test_the_loss_function_in_the_arguments_chooses_the_mapping(args: str, costs: Costs) -> None:
    assert Costs.of(parse(args)) is costs
    assert Model(args).costs is costs


def test_a_logistic_model_labels_the_chosen_line_with_the_click_cost() -> None:
    example = LearnExample(["shared |u a", "|x 1", "|x 2"], 0, 0.25, 0.0)
    assert example.labeled(Costs.CLICKS) == ["shared |u a", "0:1:0.25 |x 1", "|x 2"]
    clicked = LearnExample(["shared |u a", "|x 1", "|x 2"], 1, 0.5, 1.0)
    assert clicked.labeled(Costs.CLICKS) == ["shared |u a", "|x 1", "0:-1:0.5 |x 2"]


def test_a_logistic_model_learns_from_decisions_without_a_click() -> None:
    # Under cost = -reward a no-click is label 0, where the logistic loss has no gradient: the
    # model would never move. With the click mapping, unclicked `x` loses its mass.
    model = Model(LOGISTIC)
    before = model.predict(CONTEXT, LINES)
    model.learn([LearnExample(EXAMPLE, 0, 1 / 3, 0.0) for _ in range(30)])
    after = model.predict(CONTEXT, LINES)
    assert before == pytest.approx([1 / 3] * 3)
    assert after[0] < 0.1 < min(after[1:])


def test_a_loaded_logistic_model_keeps_learning_with_logistic_loss() -> None:
    # VW does not keep --loss_function in the model file: loaded with -i alone, the model
    # would go on with squared loss on the ±1 labels, and predict otherwise than the original.
    model = Model(LOGISTIC)
    rewards = [float(i % 3 == 1) for i in range(60)]
    model.learn([LearnExample(EXAMPLE, i % 3, 1 / 3, r) for i, r in enumerate(rewards[:30])])
    data, version = model.serialize()
    loaded = Model(LOGISTIC, data=data, version=version)
    rest = [LearnExample(EXAMPLE, i % 3, 1 / 3, r) for i, r in enumerate(rewards[30:])]
    model.learn(rest)
    loaded.learn(rest)
    assert loaded.costs is Costs.CLICKS
    assert loaded.scores(EXAMPLE) == model.scores(EXAMPLE)
