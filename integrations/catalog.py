"""The built-in tip catalog: the standing pool of candidates the bandit chooses from.

oO shows a person one tip at a time. The candidates for that choice come from two places: this
catalog, a curated set of advices and small todos shipped as data in ``data/tips.json``, and live
todos that integrations (Todoist tasks and the like) add per person at request time; those are
merged in later by other code and never written here. The catalog only says which tips exist and
when they are honest to show (``times_of_day``); ranking them is the policy's job.

The loader is strict on purpose: the file is product copy edited by hand, and a typo in a field
name or a time of day should stop start-up with a message naming the tip and the field, not ship a
tip that silently never appears.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeGuard

from bandit.errors import DomainError

TimeOfDay = Literal["morning", "afternoon", "evening", "night"]
TipKind = Literal["advice", "todo"]

TIMES_OF_DAY: tuple[TimeOfDay, ...] = ("morning", "afternoon", "evening", "night")
TIP_KINDS: tuple[TipKind, ...] = ("advice", "todo")

CATALOG_VERSION = 1
DEFAULT_PATH = Path(__file__).resolve().parent / "data" / "tips.json"

MAX_TITLE_CHARS = 60
MAX_BODY_CHARS = 240
MIN_TAGS = 2
MAX_TAGS = 5
MAX_EFFORT_MINUTES = 120

_KEBAB = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")
_TIP_FIELDS = (
    "id",
    "kind",
    "title",
    "body",
    "category",
    "tags",
    "effort_minutes",
    "times_of_day",
)
_CATALOG_FIELDS = ("version", "tips")


class CatalogError(DomainError, ValueError):
    """The tip catalog, or one tip in it, breaks the schema; the message names the tip and field."""


def time_of_day(hour: int) -> TimeOfDay:
    """Bucket a local hour (0..23): morning 5-11, afternoon 12-16, evening 17-21, night 22-4."""
    if isinstance(hour, bool) or not isinstance(hour, int) or not 0 <= hour <= 23:
        raise ValueError(f"`hour` must be an integer between 0 and 23 (got {hour!r})")
    if 5 <= hour <= 11:
        return "morning"
    if 12 <= hour <= 16:
        return "afternoon"
    if 17 <= hour <= 21:
        return "evening"
    return "night"


@dataclass(frozen=True, slots=True)
class Tip:
    """One advice or todo; validated on construction, so every Tip in memory is a valid one."""

    id: str
    kind: TipKind
    title: str
    body: str
    category: str
    tags: tuple[str, ...]
    effort_minutes: int
    times_of_day: tuple[TimeOfDay, ...]

    def __post_init__(self) -> None:
        # The loader runs the same checks on raw JSON; repeating them here keeps tips built in
        # code (tests, fixtures, future sources) under the same rules.
        label = _label(self.id)
        _slug(label, "id", self.id)
        _kind(label, self.kind)
        _text(label, "title", self.title, MAX_TITLE_CHARS)
        _text(label, "body", self.body, MAX_BODY_CHARS)
        _slug(label, "category", self.category)
        _tags(label, self.tags)
        _effort(label, self.effort_minutes)
        _times(label, self.times_of_day)

    def suits(self, tod: TimeOfDay) -> bool:
        """Whether this tip is honest to show at the given time of day."""
        return tod in self.times_of_day


class Catalog:
    """An ordered, immutable set of tips with unique ids."""

    __slots__ = ("_by_id", "_tips")

    def __init__(self, tips: Iterable[Tip]) -> None:
        self._tips = tuple(tips)
        by_id: dict[str, Tip] = {}
        first_at: dict[str, int] = {}
        for index, tip in enumerate(self._tips):
            if tip.id in by_id:
                raise CatalogError(
                    f"{_label(tip.id)}: duplicate `id` (tips[{first_at[tip.id]}] and tips[{index}])"
                )
            by_id[tip.id] = tip
            first_at[tip.id] = index
        self._by_id = by_id

    @property
    def tips(self) -> tuple[Tip, ...]:
        return self._tips

    def __len__(self) -> int:
        return len(self._tips)

    def __repr__(self) -> str:
        return f"Catalog({len(self._tips)} tips)"

    def get(self, tip_id: str) -> Tip | None:
        return self._by_id.get(tip_id)

    def suited(self, tod: TimeOfDay, kinds: Collection[TipKind] | None = None) -> list[Tip]:
        """Tips that suit ``tod``, optionally only of the given ``kinds``, in catalog order."""
        if tod not in TIMES_OF_DAY:
            raise ValueError(f"`tod` must be one of {_choices(TIMES_OF_DAY)} (got {tod!r})")
        if kinds is not None:
            unknown = sorted(kind for kind in kinds if kind not in TIP_KINDS)
            if unknown:
                raise ValueError(f"`kinds` must contain only {_choices(TIP_KINDS)} (got {unknown})")
        return [
            tip for tip in self._tips if tip.suits(tod) and (kinds is None or tip.kind in kinds)
        ]

    @property
    def categories(self) -> tuple[str, ...]:
        return tuple(sorted({tip.category for tip in self._tips}))


def load_catalog(path: Path | None = None) -> Catalog:
    """Read and strictly validate a catalog file; the packaged ``data/tips.json`` by default.

    Raises
    ------
    CatalogError
        When the file is not valid JSON or breaks the schema; the message names the tip and field.
    OSError
        When the file cannot be read.
    """
    source = DEFAULT_PATH if path is None else path
    text = source.read_text(encoding="utf-8")
    try:
        document = json.loads(text, object_pairs_hook=_reject_duplicate_keys)
    except json.JSONDecodeError as exc:
        raise CatalogError(f"{source}: not valid JSON ({exc})") from exc
    return _parse_catalog(document)


def _parse_catalog(document: object) -> Catalog:
    if not isinstance(document, dict):
        raise CatalogError(f"catalog: must be a JSON object (got {_type(document)})")
    _check_keys("catalog", document, _CATALOG_FIELDS)
    version = document["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version != CATALOG_VERSION:
        raise CatalogError(f"catalog: `version` must be {CATALOG_VERSION} (got {version!r})")
    raw_tips = document["tips"]
    if not isinstance(raw_tips, list):
        raise CatalogError(f"catalog: `tips` must be a list (got {_type(raw_tips)})")
    return Catalog(_parse_tip(index, raw) for index, raw in enumerate(raw_tips))


def _parse_tip(index: int, raw: object) -> Tip:
    where = f"tips[{index}]"
    if not isinstance(raw, dict):
        raise CatalogError(f"{where}: must be a JSON object (got {_type(raw)})")
    if "id" not in raw:
        raise CatalogError(f"{where}: missing field `id`")
    label = _label(_slug(where, "id", raw["id"]))
    _check_keys(label, raw, _TIP_FIELDS)
    return Tip(
        id=raw["id"],
        kind=_kind(label, raw["kind"]),
        title=_text(label, "title", raw["title"], MAX_TITLE_CHARS),
        body=_text(label, "body", raw["body"], MAX_BODY_CHARS),
        category=_slug(label, "category", raw["category"]),
        tags=_tags(label, raw["tags"]),
        effort_minutes=_effort(label, raw["effort_minutes"]),
        times_of_day=_times(label, raw["times_of_day"]),
    )


def _check_keys(label: str, raw: Mapping[str, object], fields: Sequence[str]) -> None:
    unknown = [key for key in raw if key not in fields]
    if unknown:
        raise CatalogError(f"{label}: unknown field `{unknown[0]}`")
    missing = [field for field in fields if field not in raw]
    if missing:
        raise CatalogError(f"{label}: missing field `{missing[0]}`")


def _slug(label: str, field: str, value: object) -> str:
    if not isinstance(value, str):
        raise CatalogError(f"{label}: `{field}` must be a string (got {_type(value)})")
    if not _KEBAB.fullmatch(value):
        raise CatalogError(
            f"{label}: `{field}` must be lowercase kebab-case like 'deep-work' (got {value!r})"
        )
    return value


def _kind(label: str, value: object) -> TipKind:
    if not _is_kind(value):
        raise CatalogError(f"{label}: `kind` must be one of {_choices(TIP_KINDS)} (got {value!r})")
    return value


def _text(label: str, field: str, value: object, max_chars: int) -> str:
    if not isinstance(value, str):
        raise CatalogError(f"{label}: `{field}` must be a string (got {_type(value)})")
    if not value.strip():
        raise CatalogError(f"{label}: `{field}` must not be empty")
    if value != value.strip():
        raise CatalogError(f"{label}: `{field}` must not start or end with whitespace")
    if len(value) > max_chars:
        raise CatalogError(
            f"{label}: `{field}` must be at most {max_chars} characters (got {len(value)})"
        )
    return value


def _tags(label: str, value: object) -> tuple[str, ...]:
    # JSON gives a list; a Tip built in code carries a tuple.
    if not isinstance(value, list | tuple):
        raise CatalogError(f"{label}: `tags` must be a list of strings (got {_type(value)})")
    if not MIN_TAGS <= len(value) <= MAX_TAGS:
        raise CatalogError(
            f"{label}: `tags` must have between {MIN_TAGS} and {MAX_TAGS} entries "
            f"(got {len(value)})"
        )
    tags = tuple(_slug(label, "tags", tag) for tag in value)
    repeated = _first_repeat(tags)
    if repeated is not None:
        raise CatalogError(f"{label}: `tags` must not repeat {repeated!r}")
    return tags


def _effort(label: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise CatalogError(f"{label}: `effort_minutes` must be an integer (got {value!r})")
    if not 0 <= value <= MAX_EFFORT_MINUTES:
        raise CatalogError(
            f"{label}: `effort_minutes` must be between 0 and {MAX_EFFORT_MINUTES} (got {value})"
        )
    return value


def _times(label: str, value: object) -> tuple[TimeOfDay, ...]:
    if not isinstance(value, list | tuple):
        raise CatalogError(
            f"{label}: `times_of_day` must be a list of strings (got {_type(value)})"
        )
    if not value:
        raise CatalogError(f"{label}: `times_of_day` must not be empty")
    times: list[TimeOfDay] = []
    for item in value:
        if not _is_time_of_day(item):
            raise CatalogError(
                f"{label}: `times_of_day` entries must be one of {_choices(TIMES_OF_DAY)} "
                f"(got {item!r})"
            )
        times.append(item)
    repeated = _first_repeat(times)
    if repeated is not None:
        raise CatalogError(f"{label}: `times_of_day` must not repeat {repeated!r}")
    if times != sorted(times, key=TIMES_OF_DAY.index):
        raise CatalogError(
            f"{label}: `times_of_day` must be in the order {', '.join(TIMES_OF_DAY)} "
            f"(got {', '.join(times)})"
        )
    return tuple(times)


def _is_kind(value: object) -> TypeGuard[TipKind]:
    return value in TIP_KINDS and isinstance(value, str)


def _is_time_of_day(value: object) -> TypeGuard[TimeOfDay]:
    return value in TIMES_OF_DAY and isinstance(value, str)


def _first_repeat(values: Sequence[str]) -> str | None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            return value
        seen.add(value)
    return None


def _reject_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # json.loads keeps the last of two equal keys; in hand-edited copy that hides a mistake.
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            ids = [v for k, v in pairs if k == "id" and isinstance(v, str)]
            where = _label(ids[0]) if ids else "catalog"
            raise CatalogError(f"{where}: field `{key}` appears twice")
        result[key] = value
    return result


def _label(tip_id: str) -> str:
    return f"tip {tip_id!r}"


def _choices(values: Sequence[str]) -> str:
    return ", ".join(repr(value) for value in values)


def _type(value: object) -> str:
    return type(value).__name__
