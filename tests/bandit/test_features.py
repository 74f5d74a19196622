import pytest

from bandit.events import Action
from bandit.features import action_lines, adf_example, check_features, line, namespaces


def test_feature_objects_become_namespaces() -> None:
    features = [
        {"user": {"tier": "gold", "age": 31, "new": False, "_id": "secret"}},
        {"time": "morning"},
        {"_meta": {"x": 1}},
    ]
    assert namespaces(features) == [
        ("user", ["tier=gold", "age:31", "new=false"]),
        ("time", ["time=morning"]),
    ]


def test_nested_objects_and_lists_flatten_to_paths() -> None:
    features = [{"user": {"geo": {"city": "São Paulo"}, "tags": ["a b", "c:d"], "v": [1, 2.5]}}]
    assert line(features) == "|user geo_city=São_Paulo tags=a_b tags=c_d v_0:1 v_1:2.5"


def test_reserved_characters_are_replaced() -> None:
    assert line([{"a|b c": {"k:1": "x|y"}}]) == "|a_b_c k_1=x_y"


def test_adf_example_labels_only_the_chosen_action() -> None:
    actions = [Action("a", [{"x": {"f": 1}}]), Action("b", [{"x": {"f": 2}}])]
    example = adf_example([{"u": {"z": "1"}}], action_lines(actions), (1, -0.5, 0.25))
    assert example == ["shared |u z=1", "|x f:1", "0:-0.5:0.25 |x f:2"]


def test_an_empty_feature_list_still_makes_a_valid_line() -> None:
    assert line([]) == "|_"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"a": float("nan")}, r"`ctx\.a` must be a finite number \(got nan\)"),
        ({"a": [1, float("inf")]}, r"`ctx\.a\[1\]` must be a finite number"),
    ],
)
def test_non_finite_features_are_refused(value: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_features(value, "ctx")  # type: ignore[arg-type]


def test_over_deep_nesting_is_refused() -> None:
    deep: dict[str, object] = {}
    node = deep
    for _ in range(12):
        node["k"] = {}
        node = node["k"]  # type: ignore[assignment]
    with pytest.raises(ValueError, match="nests deeper than 8 levels"):
        check_features(deep, "ctx")  # type: ignore[arg-type]
