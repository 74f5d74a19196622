from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import bandit.features as features_module
from bandit.events import Action
from bandit.features import (
    ACTION_LINES_KEPT,
    CONTEXT_LINES_KEPT,
    action_line,
    action_lines,
    adf_example,
    check_features,
    context_line,
    line,
    namespaces,
)


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


# JSON values as a client's body decodes them, and the awkward ones a Python caller can pass:
# non-finite floats, integers beyond 64 bits, True beside 1 and 1.0. (Keys are strings, as in
# JSON: `line` itself takes no other.)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=6)
)
_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)
_feature_lists = st.lists(st.dictionaries(st.text(max_size=4), _values, max_size=3), max_size=3)


@given(_feature_lists, _feature_lists)
def test_a_remembered_line_is_the_line(first: Any, second: Any) -> None:
    """`action_line` answers exactly what `line` does, for a candidate seen before or not,
    whatever it holds: equal encodings must never stand for different lines."""
    for features in (first, second, first, second):
        assert action_line(features) == line(features)
        assert context_line(features) == line(features)


def test_remembered_lines_are_bounded() -> None:
    features = [[{"item": {"id": i}}] for i in range(ACTION_LINES_KEPT + 10)]
    assert [action_line(f) for f in features] == [line(f) for f in features]
    assert len(features_module._action_lines) <= ACTION_LINES_KEPT
    assert action_line(features[0]) == "|item id:0"


def test_contexts_seen_once_never_push_the_candidates_lines_out() -> None:
    """Shared lines are remembered apart, and bounded on their own: a stream of contexts seen
    once (a rank's user ids) leaves the candidates' lines where they are."""
    catalog = [{"tip": {"id": "t1"}}]
    kept = action_line(catalog)
    key = next(k for k, v in features_module._action_lines.items() if v is kept)
    contexts = [[{"user": {"id": f"u{i}"}}] for i in range(ACTION_LINES_KEPT + 10)]
    examples = [adf_example(c, [kept]) for c in contexts]
    assert examples[3] == ["shared |user id=u3", "|tip id=t1"]
    assert len(features_module._context_lines) <= CONTEXT_LINES_KEPT
    assert features_module._action_lines.get(key) is kept


def test_equal_values_of_different_types_keep_their_own_lines() -> None:
    as_int, as_bool, as_text = [{"x": {"f": 1}}], [{"x": {"f": True}}], [{"x": {"f": "1"}}]
    lines = [action_line(f) for f in (as_int, as_bool, as_text)]
    assert lines == ["|x f:1", "|x f=true", "|x f=1"]


def test_the_same_features_in_another_order_keep_their_order() -> None:
    one, other = [{"x": {"a": 1, "b": 2}}], [{"x": {"b": 2, "a": 1}}]
    assert [action_line(one), action_line(other)] == ["|x a:1 b:2", "|x b:2 a:1"]
