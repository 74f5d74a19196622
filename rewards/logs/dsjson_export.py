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
from datetime import UTC, datetime
from json.encoder import encode_basestring
from typing import Any

from bandit.events import Decision, FeatureObject, JSONValue
from bandit.store import LoggedDecision, SettledRow, Store


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
