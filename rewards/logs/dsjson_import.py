r"""DSJSON lines back as typed events, one line at a time, in bounded memory.

The format and the choices made writing it are described in :mod:`.dsjson_export`. Reading
accepts what VW's learning loop and Azure Personalizer write too: the action id under ``_tag``
or ``_id`` (else its 1-based position), a ``_label_probability`` within
`PROBABILITY_TOLERANCE` of ``p[0]``, and ``_skipLearn`` lines (read with the flag set; learning
and evaluation leave them out). Every malformed line raises (or, when not strict, reports) one
`DsjsonError` naming the line and the field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, BinaryIO

from bandit.clock import OutOfRange, as_utc
from bandit.errors import DomainError
from bandit.events import Action, Features, validate_pmf

ACTION_ID_KEYS = ("_tag", "_id")
"""Keys of a `_multi` object read as the action's id, first found wins (`_tag` is written)."""

PROBABILITY_TOLERANCE = 1e-4

MAX_LINE_BYTES = 4 * 1024 * 1024
"""A longer line is refused unread: one DSJSON decision is kilobytes, even with 50 actions."""


class DsjsonError(DomainError, ValueError):
    """A DSJSON line that cannot be read; the message names the line and the field (`field`,
    also the target; empty when the line as a whole is at fault)."""

    def __init__(self, line: int, field: str, message: str) -> None:
        super().__init__(f"line {line}: {message}", target=field or None)
        self.line = line
        self.field = field


@dataclass(frozen=True, slots=True)
class ImportedEvent:
    """One logged decision read from DSJSON.

    `pmf[i]` is the probability of `actions[i]` in the logged candidate order; `chosen_index`
    indexes the chosen action in that order; `reward` is the negated `_label_cost`.
    """

    line: int
    event_id: str
    timestamp: datetime | None
    context: Features
    actions: tuple[Action, ...]
    pmf: tuple[float, ...]
    chosen_index: int
    propensity: float
    reward: float
    skip_learn: bool

    @property
    def chosen(self) -> Action:
        return self.actions[self.chosen_index]


def _finite(value: int | float) -> float | None:
    """`value` as a float, None when it is infinite, NaN, or an integer beyond float range."""
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _shown(value: Any, limit: int = 40) -> str:
    """`value` for an error message: short, whatever the line held."""
    if isinstance(value, int) and abs(value) >= 10**limit:
        return "a huge integer"
    try:
        text = repr(value)
    except RecursionError:
        return "a deeply nested value"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _number(record: dict[str, Any], key: str, line: int) -> float:
    value = record.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DsjsonError(line, key, f"`{key}` must be a number (got {_shown(value)})")
    number = _finite(value)
    if number is None:
        raise DsjsonError(line, key, f"`{key}` must be finite (got {_shown(value)})")
    return number


def _integer(record: dict[str, Any], key: str, line: int) -> int | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise DsjsonError(line, key, f"`{key}` must be an integer (got {_shown(value)})")
    return value


def parse_action(obj: Any, index: int, line: int) -> Action:
    """The `index`-th object of `c._multi` as an action (its id under `_tag` or `_id`)."""
    if not isinstance(obj, dict):
        raise DsjsonError(line, "c._multi", f"`c._multi[{index}]` must be an object")
    ids = [obj[k] for k in ACTION_ID_KEYS if k in obj]
    if ids and (isinstance(ids[0], bool) or not isinstance(ids[0], str | int | float)):
        raise DsjsonError(
            line, "c._multi", f"`c._multi[{index}]._tag` must be a string (got {_shown(ids[0])})"
        )
    action_id = str(ids[0]) if ids else str(index + 1)
    features = {k: v for k, v in obj.items() if k not in ACTION_ID_KEYS}
    return Action(id=action_id, features=[features] if features else [])


def _timestamp(value: Any, line: int) -> datetime | None:
    if value is None:
        return None
    try:
        if not isinstance(value, str):
            raise ValueError(value)
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise DsjsonError(
            line, "Timestamp", f"`Timestamp` must be ISO 8601 (got {_shown(value)})"
        ) from None
    try:
        return as_utc(moment, "Timestamp")
    except OutOfRange as exc:
        raise DsjsonError(line, "Timestamp", str(exc)) from None


def parse_record(record: Any, line: int) -> ImportedEvent:
    """One parsed DSJSON object into an event; raises DsjsonError naming the field."""
    context, multi = record_context(record, line)
    actions = tuple(parse_action(obj, i, line) for i, obj in enumerate(multi))
    label = parse_label(record, len(actions), line)
    shared = {k: v for k, v in context.items() if k != "_multi"}
    return ImportedEvent(
        line=line,
        event_id=label.event_id,
        timestamp=label.timestamp,
        context=[shared] if shared else [],
        actions=actions,
        pmf=label.pmf,
        chosen_index=label.chosen_index,
        propensity=label.propensity,
        reward=label.reward,
        skip_learn=label.skip_learn,
    )


def record_context(record: Any, line: int) -> tuple[dict[str, Any], list[Any]]:
    """The context object `c` of a parsed line and its `_multi` list of actions, checked."""
    if not isinstance(record, dict):
        raise DsjsonError(line, "", "a DSJSON line must be a JSON object")
    context = record.get("c")
    if not isinstance(context, dict):
        raise DsjsonError(line, "c", "`c` must be an object of context features")
    multi = context.get("_multi")
    if not isinstance(multi, list) or not multi:
        raise DsjsonError(line, "c._multi", "`c._multi` must be a non-empty list of actions")
    return context, multi


@dataclass(frozen=True, slots=True)
class Label:
    """Everything of a line but its features: the fields of :class:`ImportedEvent` bar
    `context` and `actions`."""

    event_id: str
    timestamp: datetime | None
    pmf: tuple[float, ...]
    chosen_index: int
    propensity: float
    reward: float
    skip_learn: bool


def _plain_pmf(a: Any, p: Any, n: int) -> list[float] | None:
    """The pmf of a line whose `a` is a permutation of 1..n and whose `p` are finite floats (as
    written), checked at C speed; None for anything else, which `_checked_pmf` then names."""
    if not (type(a) is list and type(p) is list and len(a) == len(p) == n):
        return None
    if set(map(type, a)) != {int} or set(map(type, p)) != {float}:
        return None
    if sorted(a) != list(range(1, n + 1)) or not all(map(math.isfinite, p)):
        return None
    pmf = [0.0] * n
    for index, probability in zip(a, p, strict=True):
        pmf[index - 1] = probability
    return pmf


def _checked_pmf(a: Any, p: Any, n: int, line: int) -> list[float]:
    """The pmf of `a` and `p`, or DsjsonError naming the first thing wrong with them."""
    if not isinstance(a, list) or not a:
        raise DsjsonError(line, "a", "`a` must be a non-empty list of 1-based action indices")
    if not isinstance(p, list):
        raise DsjsonError(line, "p", "`p` must be a list of probabilities")
    if len(p) != len(a):
        raise DsjsonError(line, "p", "`p` must have one probability per action in `a`")
    if sorted(x if isinstance(x, int) and not isinstance(x, bool) else -1 for x in a) != list(
        range(1, n + 1)
    ):
        raise DsjsonError(
            line, "a", f"`a` must list every action of `c._multi` once, as 1..{n} (got {_shown(a)})"
        )
    if not all(isinstance(x, int | float) and not isinstance(x, bool) for x in p):
        raise DsjsonError(line, "p", "`p` must hold numbers only")
    pmf = [0.0] * n
    for position, (index, probability) in enumerate(zip(a, p, strict=True)):
        number = _finite(probability)
        if number is None:
            raise DsjsonError(
                line, "p", f"`p[{position}]` must be finite (got {_shown(probability)})"
            )
        pmf[index - 1] = number
    return pmf


def parse_label(record: dict[str, Any], n: int, line: int) -> Label:
    """The label, pmf and identity of a parsed line with `n` actions (checked by
    `record_context` and `parse_action` first); raises DsjsonError naming the field."""
    a: Any = record.get("a")
    p: Any = record.get("p")
    pmf = _plain_pmf(a, p, n)
    if pmf is None:
        pmf = _checked_pmf(a, p, n, line)
    try:
        validate_pmf(pmf, n)
    except ValueError as exc:
        raise DsjsonError(line, "p", str(exc).replace("`pmf", "`p")) from None
    chosen = a[0] - 1
    label_action = _integer(record, "_label_Action", line)
    if label_action is not None and label_action != a[0]:
        raise DsjsonError(
            line,
            "_label_Action",
            f"`_label_Action` must be `a[0]` ({a[0]}), got {_shown(label_action)}",
        )
    label_index = _integer(record, "_labelIndex", line)
    if label_index is not None and label_index != chosen:
        raise DsjsonError(
            line,
            "_labelIndex",
            f"`_labelIndex` must be `a[0]` - 1 ({chosen}), got {_shown(label_index)}",
        )
    propensity = pmf[chosen]
    if "_label_probability" in record:
        logged = _number(record, "_label_probability", line)
        if abs(logged - propensity) > PROBABILITY_TOLERANCE:
            raise DsjsonError(
                line,
                "_label_probability",
                f"`_label_probability` must equal `p[0]` ({propensity:.6g}), got {logged:.6g}",
            )
        propensity = logged
    skip = record.get("_skipLearn", False)
    if not isinstance(skip, bool):
        raise DsjsonError(
            line, "_skipLearn", f"`_skipLearn` must be true or false (got {_shown(skip)})"
        )
    cost = _number(record, "_label_cost", line) if "_label_cost" in record or not skip else 0.0
    event_id = record.get("EventId")
    if not isinstance(event_id, str) or not event_id:
        raise DsjsonError(line, "EventId", "`EventId` must be a non-empty string")
    return Label(
        event_id=event_id,
        timestamp=_timestamp(record.get("Timestamp"), line),
        pmf=tuple(pmf),
        chosen_index=chosen,
        propensity=propensity,
        reward=-cost if cost else 0.0,
        skip_learn=skip,
    )


_BOM = b"\xef\xbb\xbf"


def _utf8(data: bytes) -> str:
    """`data.decode("utf-8-sig")` without the codec's Python wrapper (a leading byte order
    mark dropped once), on the C fast path."""
    return (data[3:] if data.startswith(_BOM) else data).decode("utf-8")


def load_line(text: str | bytes, line: int, max_line_bytes: int) -> Any:
    if len(text) > max_line_bytes:
        raise DsjsonError(line, "", f"the line exceeds {max_line_bytes} bytes")
    try:
        # DSJSON is UTF-8: json.loads would guess UTF-16/32 from the first bytes of a line, and
        # guess differently with and without its newline.
        return json.loads(_utf8(text) if isinstance(text, bytes) else text)
    except json.JSONDecodeError as exc:
        raise DsjsonError(line, "", f"not valid JSON ({exc.msg})") from None
    except UnicodeDecodeError:
        raise DsjsonError(line, "", "not valid JSON (the bytes are not UTF-8)") from None
    except ValueError as exc:  # an integer literal of thousands of digits
        raise DsjsonError(line, "", f"not valid JSON ({exc})") from None
    except RecursionError:
        raise DsjsonError(line, "", "not valid JSON (nested too deeply)") from None


def bounded_lines(handle: BinaryIO, max_line_bytes: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The lines of a binary file (with their terminators), reading at most `max_line_bytes`
    + 2 bytes of any line: room for its content and a `\r\n`.

    The rest of a longer line is skipped in small reads, and its first `max_line_bytes` + 2
    bytes are yielded so that `read_dsjson` refuses it by number: memory stays bounded whatever
    the file holds.
    """
    limit = max_line_bytes + 2
    while line := handle.readline(limit):
        if len(line) == limit and not line.endswith(b"\n"):
            while (rest := handle.readline(64 * 1024)) and not rest.endswith(b"\n"):
                pass
        yield line


def line_content(line: str | bytes) -> str | bytes:
    """`line` without its terminator (`\n` or `\r\n`), if it has one.

    `read_dsjson` reads every line through here, so a line reads the same (and a malformed
    one gets the same message) whether it comes from a file with its newline or alone.
    """
    if isinstance(line, bytes):
        return line[:-2] if line.endswith(b"\r\n") else line.removesuffix(b"\n")
    return line[:-2] if line.endswith("\r\n") else line.removesuffix("\n")


def read_dsjson(
    lines: Iterable[str | bytes],
    *,
    strict: bool = True,
    on_error: Callable[[DsjsonError], None] | None = None,
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[ImportedEvent]:
    """Events of DSJSON `lines` (blank lines are skipped), one at a time.

    Each line may end with its terminator or not (`line_content`): file lines and lines
    given alone read the same.

    With `strict`, the first malformed line raises DsjsonError; otherwise malformed lines are
    skipped and handed to `on_error`. Whatever a line holds, the only error is DsjsonError,
    naming the line and the field. Lines longer than `max_line_bytes` are refused unparsed;
    read files through `bounded_lines` so that such a line is never held whole.
    """
    for number, line in enumerate(lines, start=1):
        text = line_content(line)
        if not text.strip():
            continue
        try:
            yield parse_record(load_line(text, number, max_line_bytes), number)
        except DsjsonError as error:
            if strict:
                raise
            if on_error is not None:
                on_error(error)
