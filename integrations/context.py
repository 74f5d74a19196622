"""The tips surface: its registration, its context builder and its candidate source.

Context: the person's local clock (part of day, hour, weekday), their latest mood and energy
check-ins and their interests. Candidates: catalog tips that suit the time of day and the
kinds the person wants, minus tips shown recently (the frequency cap). Live todos from
integrations join the candidates when those integrations are connected. Every candidate then
carries the person's own history with its category (`with_history`, `integrations.history`).
"""

from __future__ import annotations

import functools
import hashlib
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TypeVar

from bandit.events import Action, FeatureObject, Features, JSONValue
from bandit.features import action_line, line
from bandit.surfaces import Surface
from integrations.catalog import Catalog, TimeOfDay, Tip, TipKind, time_of_day
from integrations.profiles import Profile, Signal

TIPS = "tips"
TIPS_SURFACE = Surface(TIPS)
"""Which tip a person sees: experiments assign each person (the decision's principal) to an
arm; the reward settings and policy are the learner's and `OO_TIPS_POLICY` until configured."""

Drawn = TypeVar("Drawn")

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SIGNAL_FRESHNESS = timedelta(hours=6)
TODO_CATEGORY = "todoist"
"""The category of live todos (tasks from Todoist), as the page shows them."""


def _level(value: float) -> str:
    """Mood and energy check-ins are 1..5; the model sees three levels."""
    if value <= 2:
        return "low"
    if value >= 4:
        return "high"
    return "okay"


def build_context(
    profile: Profile, signals: Mapping[str, Signal], now: datetime
) -> tuple[Features, datetime]:
    """Feature objects for this moment, and the person's local time."""
    local = profile.local(now)
    clock: dict[str, JSONValue] = {
        "part": time_of_day(local.hour),
        "hour": f"h{local.hour:02d}",
        "weekday": WEEKDAYS[local.weekday()],
        "weekend": local.weekday() >= 5,
    }
    context: Features = [{"clock": clock}]
    for kind in ("mood", "energy"):
        signal = signals.get(kind)
        fresh = signal is not None and now - signal.occurred_at <= SIGNAL_FRESHNESS
        level = _level(signal.value) if fresh and signal is not None else "unknown"
        context.append({kind: {"level": level}})
    if profile.interests:
        interests: list[JSONValue] = list(profile.interests)
        context.append({"person": {"interest": interests}})
    return context, local


def effort(minutes: int) -> str:
    """The effort word the model sees, shared by catalog tips and live todos."""
    if minutes == 0:
        return "read"
    if minutes <= 2:
        return "instant"
    if minutes <= 10:
        return "quick"
    if minutes <= 30:
        return "short"
    return "long"


def tip_features(tip: Tip) -> Features:
    tags: list[JSONValue] = list(tip.tags)
    tip_object: FeatureObject = {
        "tip": {
            "id": tip.id,
            "kind": tip.kind,
            "category": tip.category,
            "effort": effort(tip.effort_minutes),
            "tag": tags,
        }
    }
    return [tip_object]


@dataclass(frozen=True, slots=True)
class Candidates:
    actions: list[Action]
    lines: list[str]


class TipSource:
    """Catalog tips as bandit actions, with their VW lines computed once."""

    def __init__(self, catalog: Catalog, *, max_candidates: int = 30, min_candidates: int = 5):
        self.catalog = catalog
        self.max_candidates = max_candidates
        self.min_candidates = min_candidates
        self._actions = {t.id: Action.kept(t.id, tip_features(t)) for t in catalog.tips}
        self._lines = {tip_id: line(a.features) for tip_id, a in self._actions.items()}
        self._categories = {t.id: t.category for t in catalog.tips}

    def candidates(
        self,
        profile: Profile,
        local: datetime,
        recent: Mapping[str, datetime],
        event_id: str,
    ) -> Candidates:
        kinds = [k for k in profile.kinds if k in ("advice", "todo")] or ["advice", "todo"]
        suited, suited_ids = self._suited(time_of_day(local.hour), tuple(sorted(kinds)))
        # Most moments hold no recent tip among the suited ones: then all of them are fresh,
        # found by looking up the few recent ids rather than every suited tip.
        if suited_ids.isdisjoint(recent):
            fresh = suited
        else:
            fresh = [t for t in suited if t.id not in recent]
        if len(fresh) < self.min_candidates:
            # Everything suitable was shown recently: fall back to the least recently shown.
            stale = sorted((t for t in suited if t.id in recent), key=lambda t: recent[t.id])
            fresh = fresh + stale[: self.min_candidates - len(fresh)]
        chosen = _subset(fresh, self.max_candidates, event_id)
        return Candidates(
            actions=[self._actions[t.id] for t in chosen],
            lines=[self._lines[t.id] for t in chosen],
        )

    @functools.lru_cache(maxsize=16)  # noqa: B019 - one source per process, few keys
    def _suited(
        self, tod: TimeOfDay, kinds: tuple[TipKind, ...]
    ) -> tuple[list[Tip], frozenset[str]]:
        suited = self.catalog.suited(tod, kinds)
        return suited, frozenset(t.id for t in suited)

    def tip(self, tip_id: str) -> Tip | None:
        return self.catalog.get(tip_id)

    def category(self, action_id: str) -> str:
        """A candidate's category: the tip's, or `TODO_CATEGORY` for a live todo."""
        return self._categories.get(action_id, TODO_CATEGORY)


JOINED_KEPT = 16_384
"""How many (candidate, history part) pairs `with_history` remembers: the catalog's tips times
the few history parts people's records fall into (rates in steps of 0.05, bucketed counts).
All are forgotten at once when it is full."""

_joined: dict[tuple[str, str], tuple[Features, str, Action, str]] = {}
"""(action id, history part) -> (the action's own features and line, the action with its history
and its log JSON (`Action.kept`), its line). An entry serves only the same features object with
the same line: a catalog tip's, built once per process (`TipSource`). A live todo is a new
object each request, so it is joined anew: its features may change under the same id. Building
30 actions and lines each request was 8.5% of the api's time under `bench_rank`'s recommend
(stop 31). A history part names its feature object exactly (the part is that object's line, and
its values are numbers and bucket words), so the remembered action carries an equal object. The
remembered actions and their feature lists are shared by every decision that draws them: nothing
may change them in place (none of oO's code does; `Action` is frozen)."""


def with_history(
    actions: Sequence[Action],
    lines: Sequence[str],
    history: Callable[[str], FeatureObject],
    category: Callable[[str], str],
) -> Candidates:
    """The candidates, each with one more feature object: `history(category(action id))`.

    Lines gain that object's namespace; a category's line part is built once per call, and
    remembered across calls (`action_line`): a person's history changes only as they react.
    A catalog tip joined with a history part is remembered too (`_joined`).
    """
    parts: dict[str, tuple[FeatureObject, str]] = {}
    with_actions, with_lines = [], []
    for action, own in zip(actions, lines, strict=True):
        kind = category(action.id)
        if kind not in parts:
            obj = history(kind)
            parts[kind] = (obj, action_line([obj]))  # one person's history repeats
        obj, part = parts[kind]
        key = (action.id, part)
        joined = _joined.get(key)
        if joined is None or joined[0] is not action.features or joined[1] != own:
            if len(_joined) >= JOINED_KEPT:
                _joined.clear()
            joined = _joined[key] = (
                action.features,
                own,
                Action.kept(action.id, [*action.features, obj]),
                f"{own} {part}",
            )
        with_actions.append(joined[2])
        with_lines.append(joined[3])
    return Candidates(actions=with_actions, lines=with_lines)


def _subset(tips: Sequence[Drawn], limit: int, event_id: str) -> list[Drawn]:
    """At most `limit` tips, in their order, drawn uniformly by a hash of the event id so a
    decision can be rebuilt.

    The first `limit` steps of a Fisher-Yates shuffle, each step's draw 32 bits of SHAKE-128
    of the event id taken modulo what is left: every `limit`-subset equally likely up to the
    modulo's bias, under 1e-7 for any catalog under 400 tips. One hash call and one loop: a
    seeded `random.Random(...).sample` cost more than twice as much (a Mersenne Twister seeded
    every request, a Python call per draw; 30 of 150 tips: 11 -> 4.5 µs).
    """
    n = len(tips)
    if n <= limit:
        return list(tips)
    draws = struct.unpack(f"<{limit}I", hashlib.shake_128(event_id.encode()).digest(4 * limit))
    order = list(range(n))
    for i, draw in enumerate(draws):
        j = i + draw % (n - i)
        order[i], order[j] = order[j], order[i]
    return [tips[k] for k in sorted(order[:limit])]
