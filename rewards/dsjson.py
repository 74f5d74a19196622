"""Decisions with their rewards as VW DSJSON lines, and DSJSON lines back as typed events.

DSJSON ("decision service JSON") is the log format of VW's learning loop and of Azure
Personalizer: one decision per line, readable by `vw --cb_explore_adf --dsjson`. A line reads

    {"_label_cost": -1.0, "_label_probability": 0.8, "_label_Action": 2, "_labelIndex": 1,
     "a": [2, 1], "p": [0.8, 0.2],
     "c": {"user": {"tier": "gold"}, "_multi": [{"_tag": "tea", "tip": {"kind": "advice"}},
                                                {"_tag": "walk", "tip": {"kind": "todo"}}]},
     "EventId": "e1", "Timestamp": "2026-11-25T09:00:00.000000Z", "pdrop": 0}

Choices made here:

- **Which decisions are exported.** Only decisions whose label is settled: learned ones, with the
  reward the learner learned (`learned_reward`, which is the default reward when no reaction
  came in the window), and deferred decisions never activated, exported with `_skipLearn: true`
  and `_label_cost` 0 (they were never shown, so nothing is learned or evaluated from them;
  readers must honour the flag). Activated decisions the learner has not learned yet (reward
  window still open) are left out: their label may still change, and an export must read the
  same when run again later.
- **Action ids.** `a` holds 1-based positions in the logged candidate order; the id of each
  candidate travels in its `_multi` object under `_tag`, which VW keeps as the example's tag
  and never turns into a feature.
- **Feature objects.** The context's feature objects merge into `c` (and an action's into its
  `_multi` object): each object's keys become keys of the merged object. Two objects that
  share a key are merged key by key when both values are objects; otherwise the values are
  kept side by side in a list. VW featurizes DSJSON with its own JSON rules, so a model trained
  on an export hashes features differently from the live model; estimates are unaffected.
- **Lists of strings.** VW's JSON parser reads arrays of numbers and of objects only; a line
  with an array of strings or booleans fails to parse. Such a list under key `k` becomes one
  key per element in the enclosing object, `"k=value": 1` (its booleans and numbers by
  position, `"k_i": ...`); at the top level the keys go into an object under `k`. Our
  featurizer turns both forms into the same VW features, so a round trip keeps what the policy
  saw.
- **Timestamp** is the decision's creation time, ISO 8601 in UTC with a `Z`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any, BinaryIO

from bandit.clock import OutOfRange, as_utc
from bandit.errors import DomainError
from bandit.events import Action, Decision, FeatureObject, Features, JSONValue, validate_pmf
from bandit.store import LoggedDecision, SettledRow, Store

ACTION_ID_KEYS = ("_tag", "_id")
"""Keys of a `_multi` object read as the action's id, first found wins (`_tag` is written)."""

PROBABILITY_TOLERANCE = 1e-4

MAX_LINE_BYTES = 4 * 1024 * 1024
"""A longer line is refused unread: one DSJSON decision is kilobytes, even with 50 actions."""


# --- export ----------------------------------------------------------------------------------


def merge(objects: Iterable[FeatureObject]) -> FeatureObject:
    """Feature objects merged into one: keys of every object become keys of the result."""
    merged: FeatureObject = {}
    for obj in objects:
        for key, value in obj.items():
            merged[key] = _combine(merged[key], value) if key in merged else value
    return merged


def vw_safe(obj: FeatureObject, *, top: bool = True) -> FeatureObject:
    """`obj` with every list holding strings or booleans spelled as keys VW's parser reads."""
    safe: FeatureObject = {}
    for key, value in obj.items():
        if isinstance(value, dict):
            safe[key] = vw_safe(value, top=False)
        elif isinstance(value, list) and any(isinstance(x, str | bool) for x in value):
            keys = _spelled(key, value)
            if top:
                safe[key] = keys
            else:
                safe.update(keys)
        else:
            safe[key] = value
    return safe


def _spelled(key: str, items: list[JSONValue]) -> FeatureObject:
    spelled: FeatureObject = {}
    for i, item in enumerate(items):
        if isinstance(item, str):
            spelled[f"{key}={item}"] = 1
        elif isinstance(item, bool):
            spelled[f"{key}_{i}={'true' if item else 'false'}"] = 1
        elif isinstance(item, dict):
            spelled[f"{key}_{i}"] = vw_safe(item, top=False)
        elif item is not None and not isinstance(item, list):
            spelled[f"{key}_{i}"] = item
    return spelled


def _combine(old: JSONValue, new: JSONValue) -> JSONValue:
    if isinstance(old, dict) and isinstance(new, dict):
        return merge([old, new])
    olds = old if isinstance(old, list) else [old]
    news = new if isinstance(new, list) else [new]
    return [*olds, *news]


def timestamp(moment: datetime) -> str:
    """ISO 8601 in UTC with microseconds and a `Z`, e.g. `2026-11-25T09:00:00.000000Z`."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def to_dsjson(decision: Decision, reward: float, *, skip_learn: bool = False) -> dict[str, Any]:
    """One DSJSON record: `decision` labelled with `reward` (the cost is its negation).

    `skip_learn` marks a deferred decision that was never activated.
    """
    chosen = decision.chosen_index
    order = [chosen, *(i for i in range(len(decision.actions)) if i != chosen)]
    multi = [{"_tag": action.id, **vw_safe(merge(action.features))} for action in decision.actions]
    record: dict[str, Any] = {
        "_label_cost": -reward if reward else 0.0,
        "_label_probability": decision.propensity,
        "_label_Action": chosen + 1,
        "_labelIndex": chosen,
        "a": [i + 1 for i in order],
        "p": [decision.pmf[i] for i in order],
        "c": {**vw_safe(merge(decision.context)), "_multi": multi},
        "EventId": decision.event_id,
        "Timestamp": timestamp(decision.created_at),
    }
    if skip_learn:
        record["_skipLearn"] = True
    record["pdrop"] = 0
    return record


def label(logged: LoggedDecision) -> tuple[float, bool] | None:
    """`(reward, skip_learn)` of a logged decision, or None while its label is not settled."""
    if logged.learn_seq is not None and logged.learned_reward is not None:
        return logged.learned_reward, False
    if logged.decision.activated_at is None:
        return 0.0, True
    return None


def dumps(record: Any) -> str:
    return json.dumps(record, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def export_lines(
    store: Store,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    surface: str | None = None,
    batch: int = 1000,
    on_progress: Callable[[int], None] | None = None,
) -> Iterator[str]:
    """DSJSON lines (newline-terminated) of decisions created in [start, end), oldest first.

    Reads the log `batch` settled decisions at a time from one streamed query, so memory stays
    flat at any log size. `on_progress` receives the number of decisions read so far after
    each batch. Each line is the one `dumps(to_dsjson(...))` writes, byte for byte.
    """
    encoder = LineEncoder()
    read = 0
    for rows in store.iter_settled(start=start, end=end, surface=surface, batch=batch):
        for row in rows:
            yield encoder.line(row)
        read += len(rows)
        if on_progress is not None:
            on_progress(read)
    if on_progress is not None and read == 0:
        on_progress(read)


class LineEncoder:
    """Settled rows of the log (`Store.iter_settled`) as DSJSON lines.

    Most of the cost of an export is parsing and re-encoding the stored JSON, and the same
    candidate lists, pmfs (and often contexts) come back decision after decision. Their encoded
    fragments are remembered by stored text, up to `memo` of each kind, so memory stays bounded.
    The other fields are spelled directly as `json.dumps` spells them.
    """

    def __init__(self, memo: int = 256) -> None:
        self._memo = memo
        self._contexts: dict[str, tuple[str, FeatureObject | None]] = {}
        self._actions: dict[str, str] = {}
        self._choices: dict[tuple[str, int], str] = {}

    def line(self, row: SettledRow) -> str:
        event_id, created_at, context, actions, pmf, chosen, learn_seq, learned_reward = row
        if learn_seq is not None and learned_reward is not None:
            reward, skip = learned_reward, False
        else:
            reward, skip = 0.0, True
        head, safe = self._context(context)
        multi = self._multi(actions)
        # A context with a `_multi` key of its own: dict order decides, as in to_dsjson.
        c = f"{head}{multi}}}" if safe is None else dumps({**safe, "_multi": json.loads(multi)})
        return (
            f'{{"_label_cost":{_json_number(-reward if reward else 0.0)},'
            f"{self._choice(pmf, chosen)}"
            f'"c":{c},"EventId":{encode_basestring(event_id)},'
            f'"Timestamp":"{timestamp(created_at)}",'
            f'{_SKIP_LEARN if skip else ""}"pdrop":0}}\n'
        )

    def _choice(self, pmf_text: str, chosen: int) -> str:
        """The fields from `_label_probability` to `p` of one logged pmf and chosen index."""
        key = (pmf_text, chosen)
        known = self._choices.get(key)
        if known is None:
            pmf = json.loads(pmf_text)
            order = [chosen, *(i for i in range(len(pmf)) if i != chosen)]
            known = (
                f'"_label_probability":{_json_number(pmf[chosen])},'
                f'"_label_Action":{chosen + 1},"_labelIndex":{chosen},'
                f'"a":[{",".join([str(i + 1) for i in order])}],'
                f'"p":[{",".join([_json_number(pmf[i]) for i in order])}],'
            )
            self._remember(self._choices, key, known)
        return known

    def _context(self, text: str) -> tuple[str, FeatureObject | None]:
        """`c` up to its `_multi` value, e.g. `{"user":{...},"_multi":`; or, when the context
        has a `_multi` key of its own, `("", its vw-safe object)`."""
        known = self._contexts.get(text)
        if known is None:
            safe = vw_safe(merge(json.loads(text)))
            if "_multi" in safe:
                known = ("", safe)
            else:
                encoded = dumps(safe)
                known = (f"{encoded[:-1]},{_MULTI}" if safe else f"{{{_MULTI}", None)
            self._remember(self._contexts, text, known)
        return known

    def _multi(self, text: str) -> str:
        """The encoded `_multi` list of a stored candidate list."""
        known = self._actions.get(text)
        if known is None:
            known = dumps(
                [{"_tag": a["id"], **vw_safe(merge(a["features"]))} for a in json.loads(text)]
            )
            self._remember(self._actions, text, known)
        return known

    def _remember(self, memo: dict[Any, Any], key: Any, value: Any) -> None:
        if len(memo) >= self._memo:
            memo.clear()  # cheaper than LRU bookkeeping; repeated lists come straight back
        memo[key] = value


_MULTI = '"_multi":'
_SKIP_LEARN = '"_skipLearn":true,'


def _json_number(value: float) -> str:
    """A number as `json.dumps` writes it (`allow_nan=False`)."""
    if isinstance(value, int):
        return int.__repr__(value)
    if not math.isfinite(value):
        raise ValueError(f"Out of range float values are not JSON compliant: {value!r}")
    return float.__repr__(value)


# --- import ----------------------------------------------------------------------------------


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


def _action(obj: Any, index: int, line: int) -> Action:
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
    if not isinstance(record, dict):
        raise DsjsonError(line, "", "a DSJSON line must be a JSON object")
    context = record.get("c")
    if not isinstance(context, dict):
        raise DsjsonError(line, "c", "`c` must be an object of context features")
    multi = context.get("_multi")
    if not isinstance(multi, list) or not multi:
        raise DsjsonError(line, "c._multi", "`c._multi` must be a non-empty list of actions")
    actions = tuple(_action(obj, i, line) for i, obj in enumerate(multi))
    n = len(actions)
    a, p = record.get("a"), record.get("p")
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
    shared = {k: v for k, v in context.items() if k != "_multi"}
    return ImportedEvent(
        line=line,
        event_id=event_id,
        timestamp=_timestamp(record.get("Timestamp"), line),
        context=[shared] if shared else [],
        actions=actions,
        pmf=tuple(pmf),
        chosen_index=chosen,
        propensity=propensity,
        reward=-cost if cost else 0.0,
        skip_learn=skip,
    )


def _load(text: str | bytes, line: int, max_line_bytes: int) -> Any:
    if len(text) > max_line_bytes:
        raise DsjsonError(line, "", f"the line exceeds {max_line_bytes} bytes")
    try:
        # DSJSON is UTF-8: json.loads would guess UTF-16/32 from the first bytes of a line, and
        # guess differently with and without its newline.
        return json.loads(text.decode("utf-8-sig") if isinstance(text, bytes) else text)
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
            yield parse_record(_load(text, number, max_line_bytes), number)
        except DsjsonError as error:
            if strict:
                raise
            if on_error is not None:
                on_error(error)
