"""The built-in tip catalog: the shipped data, the loader's validation, and lookups."""

from __future__ import annotations

import copy
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

import integrations.catalog as catalog_module
from integrations.catalog import (
    DEFAULT_PATH,
    TIMES_OF_DAY,
    Catalog,
    CatalogError,
    Tip,
    load_catalog,
    time_of_day,
)

KEBAB = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


# ---------------------------------------------------------------------------- the shipped catalog


@pytest.fixture(scope="module")
def shipped() -> Catalog:
    return load_catalog()


@pytest.fixture(scope="module")
def shipped_raw() -> list[dict[str, Any]]:
    tips: list[dict[str, Any]] = json.loads(DEFAULT_PATH.read_text(encoding="utf-8"))["tips"]
    return tips


def test_default_path_is_next_to_the_module_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert Path(catalog_module.__file__).resolve().parent / "data" / "tips.json" == DEFAULT_PATH
    monkeypatch.chdir(tmp_path)
    assert load_catalog().tips == load_catalog(DEFAULT_PATH).tips


def test_shipped_catalog_has_at_least_170_tips(shipped: Catalog) -> None:
    assert len(shipped) >= 170


def test_shipped_catalog_spans_ten_categories_of_eight(shipped: Catalog) -> None:
    per_category = Counter(tip.category for tip in shipped.tips)
    assert len(per_category) >= 10
    thin = {category: n for category, n in per_category.items() if n < 8}
    assert not thin, f"categories with fewer than 8 tips: {thin}"


@pytest.mark.parametrize("kind", ["advice", "todo"])
def test_each_kind_is_at_least_40_percent(shipped: Catalog, kind: str) -> None:
    share = sum(tip.kind == kind for tip in shipped.tips) / len(shipped)
    assert share >= 0.40, f"{kind} share is {share:.1%}"


@pytest.mark.parametrize(
    ("tod", "minimum"),
    [("morning", 40), ("afternoon", 40), ("evening", 40), ("night", 25)],
)
def test_enough_tips_for_each_time_of_day(shipped: Catalog, tod: Any, minimum: int) -> None:
    assert len(shipped.suited(tod)) >= minimum


def test_ids_are_unique_and_kebab_case(shipped_raw: list[dict[str, Any]]) -> None:
    ids = [tip["id"] for tip in shipped_raw]
    repeated = [tip_id for tip_id, n in Counter(ids).items() if n > 1]
    assert not repeated
    assert [tip_id for tip_id in ids if not KEBAB.fullmatch(tip_id)] == []


def test_titles_and_bodies_fit(shipped: Catalog) -> None:
    long_titles = [tip.id for tip in shipped.tips if len(tip.title) > 60]
    long_bodies = [tip.id for tip in shipped.tips if len(tip.body) > 240]
    assert long_titles == []
    assert long_bodies == []


def test_copy_has_no_emoji_or_symbols(shipped: Catalog) -> None:
    # Emoji and pictographs are Unicode category "So" (other symbol).
    offenders = [
        tip.id
        for tip in shipped.tips
        if any(unicodedata.category(ch) == "So" for ch in tip.title + tip.body)
    ]
    assert offenders == []


def test_titles_are_unique(shipped: Catalog) -> None:
    titles = Counter(tip.title.casefold() for tip in shipped.tips)
    assert [title for title, n in titles.items() if n > 1] == []


def test_todos_take_at_least_a_minute(shipped: Catalog) -> None:
    # effort 0 means "just read it", which is what an advice is, not a todo.
    assert [tip.id for tip in shipped.tips if tip.kind == "todo" and tip.effort_minutes < 1] == []


def test_routine_tags_match_times_of_day(shipped: Catalog) -> None:
    morning = [tip for tip in shipped.tips if "morning-routine" in tip.tags]
    evening = [tip for tip in shipped.tips if "evening-routine" in tip.tags]
    assert morning
    assert evening
    assert [tip.id for tip in morning if not tip.suits("morning") or tip.suits("afternoon")] == []
    assert [tip.id for tip in evening if tip.suits("morning")] == []


def test_categories_are_sorted_and_distinct(shipped: Catalog) -> None:
    assert list(shipped.categories) == sorted({tip.category for tip in shipped.tips})


# ---------------------------------------------------------------------------- time_of_day


@pytest.mark.parametrize(
    ("hour", "expected"),
    [
        (0, "night"),
        (4, "night"),
        (5, "morning"),
        (11, "morning"),
        (12, "afternoon"),
        (16, "afternoon"),
        (17, "evening"),
        (21, "evening"),
        (22, "night"),
        (23, "night"),
    ],
)
def test_time_of_day_boundaries(hour: int, expected: str) -> None:
    assert time_of_day(hour) == expected


def test_time_of_day_covers_the_clock() -> None:
    counts = Counter(time_of_day(hour) for hour in range(24))
    assert counts == {"morning": 7, "afternoon": 5, "evening": 5, "night": 7}


@pytest.mark.parametrize("hour", [-1, 24, 5.5, True])
def test_time_of_day_rejects_bad_hours(hour: Any) -> None:
    with pytest.raises(ValueError, match="`hour` must be an integer between 0 and 23"):
        time_of_day(hour)


# ---------------------------------------------------------------------------- Tip and Catalog


def make_tip(tip_id: str, kind: Any = "todo", times: tuple[Any, ...] = ("morning",)) -> Tip:
    return Tip(
        id=tip_id,
        kind=kind,
        title=f"Title of {tip_id}",
        body="A body.",
        category="focus" if kind == "advice" else "home",
        tags=("one", "two"),
        effort_minutes=1,
        times_of_day=times,
    )


@pytest.fixture
def small() -> Catalog:
    return Catalog(
        [
            make_tip("a", "advice", ("morning", "afternoon")),
            make_tip("b", "todo", ("morning",)),
            make_tip("c", "todo", ("evening", "night")),
            make_tip("d", "advice", ("morning", "night")),
        ]
    )


def test_tip_suits_only_its_times() -> None:
    tip = make_tip("x", times=("afternoon", "night"))
    assert [tod for tod in TIMES_OF_DAY if tip.suits(tod)] == ["afternoon", "night"]


def test_suited_filters_by_time_in_catalog_order(small: Catalog) -> None:
    assert [tip.id for tip in small.suited("morning")] == ["a", "b", "d"]
    assert [tip.id for tip in small.suited("night")] == ["c", "d"]
    assert [tip.id for tip in small.suited("afternoon")] == ["a"]


def test_suited_filters_by_kind(small: Catalog) -> None:
    assert [tip.id for tip in small.suited("morning", kinds=["todo"])] == ["b"]
    assert [tip.id for tip in small.suited("morning", kinds={"advice"})] == ["a", "d"]
    assert [tip.id for tip in small.suited("morning", kinds=("advice", "todo"))] == ["a", "b", "d"]
    assert small.suited("afternoon", kinds=["todo"]) == []
    assert small.suited("night", kinds=[]) == []


def test_suited_rejects_unknown_time_or_kind(small: Catalog) -> None:
    bad_tod: Any = "noon"
    with pytest.raises(ValueError, match="`tod` must be one of"):
        small.suited(bad_tod)
    bad_kinds: Any = ["tip"]
    with pytest.raises(ValueError, match=re.escape("`kinds` must contain only")):
        small.suited("morning", kinds=bad_kinds)


def test_get_len_and_categories(small: Catalog) -> None:
    assert len(small) == 4
    assert small.get("c") is small.tips[2]
    assert small.get("missing") is None
    assert small.categories == ("focus", "home")


def test_catalog_rejects_duplicate_ids() -> None:
    with pytest.raises(
        CatalogError, match=re.escape("tip 'b': duplicate `id` (tips[1] and tips[2])")
    ):
        Catalog([make_tip("a"), make_tip("b"), make_tip("b")])


def test_tip_validates_when_built_in_code() -> None:
    with pytest.raises(CatalogError, match=re.escape("tip 'x': `kind` must be one of")):
        make_tip("x", kind="tip")
    with pytest.raises(CatalogError, match=re.escape("tip 'x': `times_of_day` must not be empty")):
        make_tip("x", times=())


# ---------------------------------------------------------------------------- loader validation

VALID_TIP: dict[str, Any] = {
    "id": "two-minute-rule",
    "kind": "advice",
    "title": "Two-minute rule",
    "body": "If it takes under two minutes, do it now.",
    "category": "focus",
    "tags": ["small-tasks", "procrastination"],
    "effort_minutes": 0,
    "times_of_day": ["morning", "afternoon"],
}
FIELDS = list(VALID_TIP)


def write_catalog(tmp_path: Path, document: Any) -> Path:
    path = tmp_path / "tips.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def load_tips(tmp_path: Path, *tips: Any) -> Catalog:
    return load_catalog(write_catalog(tmp_path, {"version": 1, "tips": list(tips)}))


def tip_with(**changes: Any) -> dict[str, Any]:
    tip = copy.deepcopy(VALID_TIP)
    tip.update(changes)
    return tip


def test_valid_file_loads_into_tips(tmp_path: Path) -> None:
    catalog = load_tips(tmp_path, VALID_TIP)
    assert catalog.tips == (
        Tip(
            id="two-minute-rule",
            kind="advice",
            title="Two-minute rule",
            body="If it takes under two minutes, do it now.",
            category="focus",
            tags=("small-tasks", "procrastination"),
            effort_minutes=0,
            times_of_day=("morning", "afternoon"),
        ),
    )


def test_limits_are_inclusive(tmp_path: Path) -> None:
    edge = tip_with(
        title="t" * 60,
        body="b" * 240,
        tags=["a", "b", "c", "d", "e"],
        effort_minutes=120,
        times_of_day=list(TIMES_OF_DAY),
    )
    (tip,) = load_tips(tmp_path, edge).tips
    assert (len(tip.title), len(tip.body), len(tip.tags), tip.effort_minutes) == (60, 240, 5, 120)


ID = "tip 'two-minute-rule': "


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"kind": "tip"}, ID + "`kind` must be one of 'advice', 'todo' (got 'tip')"),
        ({"kind": 1}, ID + "`kind` must be one of 'advice', 'todo' (got 1)"),
        ({"title": ""}, ID + "`title` must not be empty"),
        ({"title": "   "}, ID + "`title` must not be empty"),
        ({"title": " Padded"}, ID + "`title` must not start or end with whitespace"),
        ({"title": "t" * 61}, ID + "`title` must be at most 60 characters (got 61)"),
        ({"title": 7}, ID + "`title` must be a string (got int)"),
        ({"body": ""}, ID + "`body` must not be empty"),
        ({"body": "b" * 241}, ID + "`body` must be at most 240 characters (got 241)"),
        ({"body": None}, ID + "`body` must be a string (got NoneType)"),
        ({"category": "Deep Work"}, ID + "`category` must be lowercase kebab-case"),
        ({"category": ["focus"]}, ID + "`category` must be a string (got list)"),
        ({"tags": "focus"}, ID + "`tags` must be a list of strings (got str)"),
        ({"tags": ["focus"]}, ID + "`tags` must have between 2 and 5 entries (got 1)"),
        ({"tags": list("abcdef")}, ID + "`tags` must have between 2 and 5 entries (got 6)"),
        ({"tags": ["focus", "Deep_Work"]}, ID + "`tags` must be lowercase kebab-case"),
        ({"tags": ["focus", "-edge"]}, ID + "`tags` must be lowercase kebab-case"),
        ({"tags": ["focus", 3]}, ID + "`tags` must be a string (got int)"),
        ({"tags": ["focus", "focus"]}, ID + "`tags` must not repeat 'focus'"),
        ({"effort_minutes": 500}, ID + "`effort_minutes` must be between 0 and 120 (got 500)"),
        ({"effort_minutes": -1}, ID + "`effort_minutes` must be between 0 and 120 (got -1)"),
        ({"effort_minutes": 2.5}, ID + "`effort_minutes` must be an integer (got 2.5)"),
        ({"effort_minutes": True}, ID + "`effort_minutes` must be an integer (got True)"),
        ({"effort_minutes": "5"}, ID + "`effort_minutes` must be an integer (got '5')"),
        ({"times_of_day": []}, ID + "`times_of_day` must not be empty"),
        ({"times_of_day": "morning"}, ID + "`times_of_day` must be a list of strings (got str)"),
        ({"times_of_day": ["noon"]}, ID + "`times_of_day` entries must be one of"),
        (
            {"times_of_day": ["Morning"]},
            ID + "`times_of_day` entries must be one of 'morning', 'afternoon', 'evening', "
            "'night' (got 'Morning')",
        ),
        ({"times_of_day": ["night", "night"]}, ID + "`times_of_day` must not repeat 'night'"),
        (
            {"times_of_day": ["night", "morning"]},
            ID + "`times_of_day` must be in the order morning, afternoon, evening, night",
        ),
        ({"colour": "blue"}, ID + "unknown field `colour`"),
        ({"id": "Two Minute Rule"}, "tips[0]: `id` must be lowercase kebab-case"),
        ({"id": "two--minute"}, "tips[0]: `id` must be lowercase kebab-case"),
        ({"id": 7}, "tips[0]: `id` must be a string (got int)"),
    ],
)
def test_bad_field_is_named(tmp_path: Path, changes: dict[str, Any], message: str) -> None:
    with pytest.raises(CatalogError, match=re.escape(message)):
        load_tips(tmp_path, tip_with(**changes))


@pytest.mark.parametrize("field", [field for field in FIELDS if field != "id"])
def test_missing_field_is_named(tmp_path: Path, field: str) -> None:
    tip = tip_with()
    del tip[field]
    with pytest.raises(CatalogError, match=re.escape(f"{ID}missing field `{field}`")):
        load_tips(tmp_path, tip)


def test_missing_id_names_the_position(tmp_path: Path) -> None:
    other = tip_with(id="other")
    nameless = tip_with()
    del nameless["id"]
    with pytest.raises(CatalogError, match=re.escape("tips[1]: missing field `id`")):
        load_tips(tmp_path, other, nameless)


def test_error_names_the_offending_tip_not_the_first(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=re.escape("tip 'second': `effort_minutes`")):
        load_tips(tmp_path, tip_with(id="first"), tip_with(id="second", effort_minutes=999))


def test_duplicate_ids_in_file(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match=re.escape(f"{ID}duplicate `id` (tips[0] and tips[2])")):
        load_tips(tmp_path, VALID_TIP, tip_with(id="other"), VALID_TIP)


def test_duplicate_json_key_is_rejected(tmp_path: Path) -> None:
    # json.loads would silently keep the second title; the loader refuses.
    text = json.dumps({"version": 1, "tips": [VALID_TIP]}).replace(
        '"title": ', '"title": "First title", "title": ', 1
    )
    path = tmp_path / "tips.json"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CatalogError, match=re.escape(f"{ID}field `title` appears twice")):
        load_catalog(path)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ([VALID_TIP], "catalog: must be a JSON object (got list)"),
        ({"tips": [VALID_TIP]}, "catalog: missing field `version`"),
        ({"version": 1}, "catalog: missing field `tips`"),
        ({"version": 2, "tips": []}, "catalog: `version` must be 1 (got 2)"),
        ({"version": "1", "tips": []}, "catalog: `version` must be 1 (got '1')"),
        ({"version": True, "tips": []}, "catalog: `version` must be 1 (got True)"),
        ({"version": 1, "tips": [], "name": "x"}, "catalog: unknown field `name`"),
        ({"version": 1, "tips": {"a": VALID_TIP}}, "catalog: `tips` must be a list (got dict)"),
        ({"version": 1, "tips": ["two-minute-rule"]}, "tips[0]: must be a JSON object (got str)"),
    ],
)
def test_bad_document_is_named(tmp_path: Path, document: Any, message: str) -> None:
    with pytest.raises(CatalogError, match=re.escape(message)):
        load_catalog(write_catalog(tmp_path, document))


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "tips.json"
    path.write_text('{"version": 1, "tips": [', encoding="utf-8")
    with pytest.raises(CatalogError, match=re.escape(f"{path}: not valid JSON")):
        load_catalog(path)


def test_empty_catalog_is_allowed(tmp_path: Path) -> None:
    catalog = load_tips(tmp_path)
    assert len(catalog) == 0
    assert catalog.categories == ()
