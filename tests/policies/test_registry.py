"""Policy specs: validation names the bad VW option, every exploration algorithm serves, rules."""

from __future__ import annotations

import re

import pytest

from bandit.events import Action
from bandit.model import Model
from bandit.model_keys import build as model_key
from bandit.model_keys import policy_of
from policies import rule
from policies.registry import BUILTIN, Registry, offending_option, validate
from policies.spec import PolicySpec, PolicySpecError, parse_id

EXPLORATION = {
    "epsilon": "--cb_explore_adf --epsilon 0.1",
    "softmax": "--cb_explore_adf --softmax --lambda 5",
    "bag": "--cb_explore_adf --bag 4",
    "cover": "--cb_explore_adf --cover 3",
    "regcb": "--cb_explore_adf --regcb",
    "regcbopt": "--cb_explore_adf --regcbopt",
    "squarecb": "--cb_explore_adf --squarecb --gamma_scale 10",
    "synthcover": "--cb_explore_adf --synthcover",
    "tuned": "--cb_explore_adf --epsilon 0.05 --cb_type dr -q ca --learning_rate 0.3 --power_t 0",
}


@pytest.mark.parametrize("algorithm", sorted(EXPLORATION))
def test_each_exploration_algorithm_validates_and_predicts(algorithm: str) -> None:
    spec = PolicySpec(f"vw-{algorithm}", "vw", EXPLORATION[algorithm])
    validate(spec)
    model = Model(spec.args)
    pmf = model.predict([{"c": {"x": 1}}], ["|a y:1", "|a z:1", "|a w:1"])
    assert len(pmf) == 3 and abs(sum(pmf) - 1) < 1e-9
    model.close()


@pytest.mark.parametrize(
    ("args", "option"),
    [
        ("--cb_explore_adf --foo", "--foo"),
        ("--cb_explore_adf --epsilon abc", "--epsilon"),
        ("--cb_explore_adf --cb_type nope", "--cb_type"),
        ("--cb_explore_adf --learning_rate x", "--learning_rate"),
        ("--cb_explore_adf -q", "-q"),
    ],
)
def test_bad_vw_arguments_name_the_option(args: str, option: str) -> None:
    with pytest.raises(PolicySpecError, match=f"^`args`: .*{re.escape(option)}") as caught:
        validate(PolicySpec("bad", "vw", args))
    assert caught.value.target == option


def test_offending_option_falls_back_to_args() -> None:
    assert offending_option("--cb_explore_adf --bag 5 --cover 3", "prediction type mismatch") == (
        "args"
    )


def test_rule_spec_must_name_a_known_rule() -> None:
    validate(PolicySpec("urgent", "rule", "most-urgent-todo"))
    with pytest.raises(PolicySpecError, match="`args` of a rule policy must name a rule"):
        validate(PolicySpec("urgent", "rule", "alphabetical"))


def test_arm_model_keys_resolve_to_their_policy() -> None:
    registry = Registry()
    key = model_key("tips", "vw-softmax", "exp-1", "treatment")
    assert key == "tips:vw-softmax:exp-1/treatment"
    assert policy_of(key) == "vw-softmax"
    assert registry.args_for(key) == registry.get("vw-softmax").args
    assert registry.args_for(model_key("tips", "random", "exp-1", "control")) is None


def test_registry_consults_its_loader_for_unknown_names() -> None:
    stored = PolicySpec("stored", "vw", "--cb_explore_adf --epsilon 0.3")
    registry = Registry(loader=lambda name: stored if name == "stored" else None)
    assert registry.get("stored") == stored
    with pytest.raises(PolicySpecError, match="unknown policy 'other'"):
        registry.get("other")


def test_a_model_keys_policy_stored_after_it_was_asked_for_is_found() -> None:
    """`args_for` remembers the spec a key found, never that a key found none."""
    stored: dict[str, PolicySpec] = {}
    registry = Registry(loader=stored.get)
    key = model_key("tips", "later", "exp-1", "b")
    assert registry.args_for(key) is None  # not stored yet
    stored["later"] = PolicySpec("later", "vw", "--cb_explore_adf --epsilon 0.3")
    assert registry.args_for(key) == "--cb_explore_adf --epsilon 0.3"
    assert registry.args_for(key) == "--cb_explore_adf --epsilon 0.3"


def _todo(action_id: str, priority: int, overdue: bool = False) -> Action:
    return Action(action_id, [{"tip": {"kind": "todo", "priority": priority, "overdue": overdue}}])


def test_most_urgent_todo_prefers_overdue_then_priority_with_a_floor() -> None:
    actions = [
        Action("advice", [{"tip": {"kind": "advice"}}]),
        _todo("p4", 4),
        _todo("late-p1", 1, overdue=True),
        _todo("p3", 3),
    ]
    policy = rule.Policy("urgent", "tips:urgent", "most-urgent-todo")
    pmf = policy.pmf([], actions, [])
    floor = rule.FLOOR / 4
    assert pmf == pytest.approx([floor, floor, 1 - rule.FLOOR + floor, floor])
    assert min(pmf) > 0  # every action stays evaluable offline


def test_most_urgent_todo_is_uniform_without_todos_and_first_on_ties() -> None:
    policy = rule.Policy("urgent", "tips:urgent", "most-urgent-todo")
    advice = [Action("a", [{"tip": {"kind": "advice"}}]), Action("b")]
    assert policy.pmf([], advice, []) == [0.5, 0.5]
    assert rule.most_urgent_todo([_todo("x", 2), _todo("y", 2)]) == 0


def test_versions_have_unambiguous_ids_and_models() -> None:
    first = PolicySpec("cover", "vw", "--cb_explore_adf --cover 3")
    second = PolicySpec("cover", "vw", "--cb_explore_adf --cover 5", version=2)
    assert (first.id, second.id) == ("cover", "cover@v2")
    assert parse_id("cover@v2") == ("cover", 2) and parse_id("cover") == ("cover", 1)
    with pytest.raises(PolicySpecError, match="`policy` must be a policy name or `name@vN`"):
        parse_id("cover@v0")
    with pytest.raises(PolicySpecError, match="`version` must be a positive integer"):
        PolicySpec("cover", "random", version=0)
    with pytest.raises(PolicySpecError, match="`description` must not contain NUL"):
        PolicySpec("cover", "random", description="a\x00b")

    registry = Registry([*BUILTIN, second, first])
    assert registry.find("cover") == first  # a bare id is version 1, wherever it is stored
    assert registry.find("cover@v1") == first and registry.find("cover@v2") == second
    assert registry.find("cover@v3") is None and registry.find("cover@x") is None
    assert registry.latest("cover") == second
    assert [s.version for s in registry.versions("cover")] == [1, 2]
    assert registry.pin("cover") == "cover@v2" and registry.pin("cover@v1") == "cover"
    assert registry.pin("vw-epsilon") == "vw-epsilon" and registry.pin("nope") == "nope"
    key = model_key("tips", registry.pin("cover"), "exp", "arm")
    assert key == "tips:cover@v2:exp/arm" and policy_of(key) == "cover@v2"
    assert registry.args_for(key) == second.args
    assert registry.args_for("tips:cover") == first.args
