"""A person's own history with the tips surface, as features of each candidate.

What the time, the mood and the integrations say about a moment is the same for everyone; what
this person did with earlier tips is theirs. Each candidate gets a `history` namespace describing
the person's record with the candidate's category over the last `HISTORY_DAYS`:

``rate``
    the smoothed share of their reactions to that category that were positive (done, useful):
    ``(positive + 1) / (reacted + 2)``, 0.5 with no reaction yet, rounded to 0.05;
``part_rate``
    the same, counting only decisions made in the current part of day;
``seen``
    how many reactions that is: ``none``, ``once``, ``few`` (2-4), ``many`` (5+);
``last_done``
    days since a positive reaction in that category: ``today``, ``days1_2``, ``days3_6``,
    ``weeks``, ``never``;
``streak``
    consecutive days, ending today or yesterday, with a positive reaction in that category:
    ``none``, ``d1``, ``d2_3``, ``d4plus``;
``dismissed``
    whether they dismissed a tip of that category in the last three days.

No identifiers (not the tip's, not the person's) and only bucketed or continuous values in
[0, 1], so VW learns one weight for "people like categories they liked before" that carries
over between people and categories, and `-q ::` crosses it with the context.

`HistoryCache` keeps each person's recent decisions in memory, updated as they are made and
reacted to, so a warm request reads no database; a miss (first request, or older than `TTL`,
which bounds what another api process's updates can leave stale) is one query of `bandit`'s
decision log (`Store.person_history`).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, tzinfo
from itertools import takewhile

from bandit.events import FeatureObject, JSONValue
from bandit.store import PastChoice, Store
from integrations.catalog import TimeOfDay, time_of_day

NAMESPACE = "history"
HISTORY_DAYS = 28
MAX_EVENTS = 200
"""Decisions kept per person: about seven a day over `HISTORY_DAYS`."""
MAX_PEOPLE = 4096
TTL = timedelta(minutes=10)
RECENT_DISMISS = timedelta(days=3)
POSITIVE = frozenset({"done", "useful"})


@dataclass(slots=True)
class Past:
    """One earlier decision: when, the chosen action's category, the person's reaction."""

    at: datetime
    category: str
    reaction: str | None = None


def _seen(reacted: int) -> str:
    if reacted == 0:
        return "none"
    if reacted == 1:
        return "once"
    return "few" if reacted <= 4 else "many"


def _last_done(days: int | None) -> str:
    if days is None:
        return "never"
    if days == 0:
        return "today"
    if days <= 2:
        return "days1_2"
    return "days3_6" if days <= 6 else "weeks"


def _streak(days: int) -> str:
    if days == 0:
        return "none"
    if days == 1:
        return "d1"
    return "d2_3" if days <= 3 else "d4plus"


def _rate(positive: int, reacted: int) -> float:
    """Laplace-smoothed positive share, rounded to 0.05 (few distinct lines, a stable cache)."""
    return round((positive + 1) / (reacted + 2) * 20) / 20


@dataclass(slots=True)
class _Tally:
    reacted: int = 0
    positive: int = 0
    part_reacted: int = 0
    part_positive: int = 0
    done_days: set[date] = field(default_factory=set)
    dismissed: bool = False

    def features(self, today: date) -> FeatureObject:
        last = (today - max(self.done_days)).days if self.done_days else None
        streak, day = 0, today if today in self.done_days else today - timedelta(days=1)
        while day in self.done_days:
            streak, day = streak + 1, day - timedelta(days=1)
        values: dict[str, JSONValue] = {
            "rate": _rate(self.positive, self.reacted),
            "part_rate": _rate(self.part_positive, self.part_reacted),
            "seen": _seen(self.reacted),
            "last_done": _last_done(last),
            "streak": _streak(streak),
            "dismissed": self.dismissed,
        }
        return {NAMESPACE: values}


class History:
    """One person's decisions of the last `HISTORY_DAYS`, oldest first, at most `MAX_EVENTS`.

    Thread-safe: a person's requests may run side by side.
    """

    def __init__(self, events: OrderedDict[str, Past] | None = None) -> None:
        self._events: OrderedDict[str, Past] = events if events is not None else OrderedDict()
        # The decisions reacted to, by event id: all `features` reads. Most decisions get no
        # reaction, and every recommend asks for the features of its person.
        self._reacted = {e: p for e, p in self._events.items() if p.reaction is not None}
        # The last `features` answer, kept while nothing it counted changes (`_Features`).
        self._features: _Features | None = None
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._events)

    def shown(self, event_id: str, at: datetime, category: str) -> None:
        with self._lock:
            self._events[event_id] = Past(at, category)
            if self._reacted.pop(event_id, None) is not None:
                self._features = None
            while len(self._events) > MAX_EVENTS:
                if self._reacted.pop(self._events.popitem(last=False)[0], None) is not None:
                    self._features = None

    def reacted(self, event_id: str, reaction: str) -> None:
        """The person's first reaction to a decision (later ones do not count, as rewards)."""
        with self._lock:
            past = self._events.get(event_id)
            if past is not None and past.reaction is None:
                past.reaction = reaction
                self._reacted[event_id] = past
                self._features = None

    def since(self, at: datetime) -> int:
        """How many of the decisions held were made at or after `at`, counted from the newest
        back to the first older one (they are held in the order they were logged)."""
        with self._lock:
            return sum(1 for _ in takewhile(lambda p: p.at >= at, reversed(self._events.values())))

    def moments(self) -> list[tuple[str, datetime, bool]]:
        """Each decision's event id, when it was made and whether the person reacted to it,
        oldest first (what the timing surface reads: visits and engagement by hour)."""
        with self._lock:
            return [(e, p.at, p.reaction is not None) for e, p in self._events.items()]

    def features(self, now: datetime, zone: tzinfo) -> Callable[[str], FeatureObject]:
        """Category -> the `history` feature object of a candidate in it, at `now`.

        Every recommend asks, and the answer changes only when the person reacts, a reaction
        leaves a window, or the day or the part of day turns: it is kept (`_Features`) and
        counted anew only then (about 70 µs for a person with 30 reactions in 15 categories).
        """
        local = now.astimezone(zone)
        today, part = local.date(), time_of_day(local.hour)
        with self._lock:
            kept = self._features
            if kept is None or not kept.serves(now, zone, today, part):
                kept = self._features = self._count(now, zone, today, part)
        made, unseen = kept.made, kept.unseen
        return lambda category: made.get(category, unseen)

    def _count(self, now: datetime, zone: tzinfo, today: date, part: TimeOfDay) -> _Features:
        """Tally the reactions within the windows at `now`; the answer holds until the first
        one counted leaves its window. Under the lock."""
        since, recent = now - timedelta(days=HISTORY_DAYS), now - RECENT_DISMISS
        until = datetime.max.replace(tzinfo=now.tzinfo)
        tallies: dict[str, _Tally] = {}
        for past in self._reacted.values():
            if past.at < since:
                continue
            until = min(until, past.at + timedelta(days=HISTORY_DAYS))
            tally = tallies.get(past.category)
            if tally is None:
                tally = tallies[past.category] = _Tally()
            positive = past.reaction in POSITIVE
            tally.reacted += 1
            tally.positive += positive
            when = past.at.astimezone(zone)
            if time_of_day(when.hour) == part:
                tally.part_reacted += 1
                tally.part_positive += positive
            if positive:
                tally.done_days.add(when.date())
            if past.reaction == "dismiss" and past.at >= recent:
                tally.dismissed = True
                until = min(until, past.at + RECENT_DISMISS)
        made = {category: tally.features(today) for category, tally in tallies.items()}
        return _Features(now, until, zone, today, part, made, _Tally().features(today))


@dataclass(frozen=True, slots=True)
class _Features:
    """What `History.features` counted at `counted`, and for which moments it still holds.

    Each reaction counts while it is within `HISTORY_DAYS` of now, a dismissal as recent while
    within `RECENT_DISMISS`: moving now forward only lets counted ones leave, the first of
    them at `until`, and never brings in one left out. The local day and part of day are
    compared as they are. A moment before `counted` is counted anew (a clock set back).
    """

    counted: datetime
    until: datetime
    zone: tzinfo
    today: date
    part: TimeOfDay
    made: dict[str, FeatureObject]
    unseen: FeatureObject

    def serves(self, now: datetime, zone: tzinfo, today: date, part: TimeOfDay) -> bool:
        return (
            self.counted <= now <= self.until
            and today == self.today
            and part == self.part
            and zone == self.zone
        )


@dataclass(slots=True)
class _Entry:
    history: History
    loaded: float


class HistoryCache:
    """People's histories in memory: no query when warm, one on a miss (see the module doc).

    Thread-safe; one per process. `category` maps a chosen action id to its category.
    """

    def __init__(
        self,
        store: Store,
        surface: str,
        category: Callable[[str], str],
        *,
        ttl: timedelta = TTL,
        max_people: int = MAX_PEOPLE,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store = store
        self._surface = surface
        self._category = category
        self._ttl = ttl.total_seconds()
        self._max_people = max_people
        self._clock = clock
        self._people: OrderedDict[str, _Entry] = OrderedDict()
        self._lock = threading.Lock()

    def cached(self, principal: str) -> History | None:
        """The person's history when `get` would answer from memory (no read of the log)."""
        with self._lock:
            entry = self._people.get(principal)
            return entry.history if entry is not None and self._fresh(entry) else None

    def _fresh(self, entry: _Entry) -> bool:
        return self._clock() - entry.loaded < self._ttl

    def get(self, principal: str, now: datetime) -> History:
        """The person's history: from memory, or (missing or older than the TTL) the log."""
        with self._lock:
            entry = self._people.get(principal)
            if entry is not None and self._fresh(entry):
                self._people.move_to_end(principal)
                return entry.history
        history = self.load(principal, now)
        with self._lock:
            self._people[principal] = _Entry(history, self._clock())
            self._people.move_to_end(principal)
            while len(self._people) > self._max_people:
                self._people.popitem(last=False)
        return history

    def load(self, principal: str, now: datetime) -> History:
        """The person's history read from the decision log (one query)."""
        since = now - timedelta(days=HISTORY_DAYS)
        rows = self._store.person_history(principal, self._surface, since, MAX_EVENTS)
        return History(OrderedDict((row.event_id, self._past(row)) for row in reversed(rows)))

    def _past(self, row: PastChoice) -> Past:
        return Past(row.created_at, self._category(row.chosen_action), row.reaction)

    def shown(self, principal: str, event_id: str, at: datetime, action_id: str) -> None:
        """A decision was logged: it joins the person's history if it is in memory."""
        with self._lock:
            entry = self._people.get(principal)
            if entry is not None:
                entry.history.shown(event_id, at, self._category(action_id))

    def reacted(self, principal: str, event_id: str, reaction: str) -> None:
        """The person reacted: the decision's reaction is kept if it is in memory."""
        with self._lock:
            entry = self._people.get(principal)
            if entry is not None:
                entry.history.reacted(event_id, reaction)

    def forget(self, principal: str) -> None:
        """Drop the person (their data is being erased)."""
        with self._lock:
            self._people.pop(principal, None)
