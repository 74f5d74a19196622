"""`oo simulate --timing`: synthetic people's receptivity, and when the timing policy pushes.

Each synthetic person wakes at 08:00 and sleeps at 22:00 (28 decision points a day, every 30
minutes) and gets at most `DOSE` pushes a day. Whether they open a push within 30 minutes depends
on (the truth is hidden from the policy, which sees only the timing surface's context):

- the hour: everyone is receptive around lunch (12-13) and 19:00; besides, each person has a
  chronotype, `early` (receptive around 08 and 18 too) or `late` (around 20-21); elsewhere
  receptivity is low, lower still in working hours on weekdays (interruptibility research:
  people are receptive at breakpoints, not at random);
- the calendar: in a meeting, almost never; with one starting within the hour, less;
- recent pushes (habituation): within an hour of the last push, a fifth as often; within two
  hours, half; and each push already sent today wears it down by another 10%;
- energy: on a low-energy day, a fifth less.

Left alone, a person comes to the page on their own with a small probability per half hour (more
around their receptive hours). A `send` is rewarded 1 when opened, a `wait` when they came on
their own: the timing surface's reward (ADR 0014).

The learned policy decides through a `TimingDriver`. `SurfaceDriver` drives the timing surface
itself, in process: each decision is `notifier.timing.Timing.choose` (the call the notifier's
decision points make: the timing policy that serves the person, an experiment's arm included,
paced over the contexts of the day's remaining points (`notifier.pacing`), logged on the `timing`
surface with its pmf), each reward is `Timing.reward` (summed over the
window: the push's cost, then the open or the visit), and when a simulated half hour ends its
windows are closed by the learner (`Learner.learn_events`, what its sweep does when a window
closes on the real clock). `LoopDriver` drives a running server over HTTP through the
Personalizer-compatible rank and reward calls (`api.simulate.Loop`) with the timing surface's
features and actions: that measures the Personalizer surface's policy, not the timing surface's.
Each person-day, the two baselines then send the **same number of pushes** as the learned policy
did: at random decision points spread over the whole day (`random_time`, its expectation over
`RANDOM_TIME_DRAWS` draws), or at fixed times of day (`fixed_time`: 12:00, then 18:00, then
09:00). Each strategy keeps its own push history, so habituation costs each what its own pushes
cost it. Engagement is the exact open probability of every push, averaged per push.
"""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from api.simulate import Loop
from integrations.calendar import Busy, FreeBusy
from integrations.profiles import Profile
from integrations.signals import trusted
from integrations.timing import ACTIONS, PUSH_COST, SEND, Recency, timing_context
from notifier.timing import Timing

DOSE = 3
WAKE_HOUR, SLEEP_HOUR = 8, 22
SLOT = timedelta(minutes=30)
FIXED_TIMES = ((12, 0), (18, 0), (9, 0))
"""Where the fixed-time baseline pushes: the first k of these for k pushes that day."""
RANDOM_TIME_DRAWS = 64
"""Random-time days drawn per person-day (see `_baselines`)."""
START = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday
PEAKS = {
    "early": {8: 0.45, 12: 0.5, 13: 0.4, 18: 0.5, 19: 0.5},
    "late": {12: 0.5, 13: 0.4, 19: 0.5, 20: 0.55, 21: 0.5},
}
OFF_PEAK = {"workday": 0.05, "free": 0.12}
VISIT = {"peak": 0.14, "off": 0.06}
ENGAGEMENT_DAYS = 28


@dataclass
class _History:
    """One strategy's pushes to one person."""

    last_push: datetime | None = None
    pushes_today: int = 0


@dataclass
class Person:
    name: str
    chronotype: str
    profile: Profile
    learned: _History = field(default_factory=_History)
    random_time: _History = field(default_factory=_History)
    fixed_time: _History = field(default_factory=_History)
    last_visit: datetime | None = None
    engaged_at: list[datetime] = field(default_factory=list)
    meetings: tuple[Busy, ...] = ()
    energy: float = 3.0


class TimingWorld:
    """Synthetic people and their days, drawn from `seed`."""

    def __init__(self, people: int, seed: int) -> None:
        if people < 1:
            raise ValueError(f"`people` must be at least 1 (got {people})")
        self.rng = np.random.default_rng(seed)
        self.baseline_rng = np.random.default_rng([seed, 1])
        self.people = [
            Person(f"p{i}", "early" if i % 2 == 0 else "late", Profile(f"sim-{i}"))
            for i in range(people)
        ]

    def slots(self, day: int) -> list[datetime]:
        first = START + timedelta(days=day, hours=WAKE_HOUR)
        return [first + SLOT * i for i in range((SLEEP_HOUR - WAKE_HOUR) * 2)]

    def new_day(self, day: int) -> None:
        """Each person's meetings and energy for the day; the day's push counts start at 0."""
        weekday = (START + timedelta(days=day)).weekday() < 5
        for person in self.people:
            meetings = []
            for hour in self.rng.choice(range(9, 17), int(self.rng.integers(1, 5)), False):
                if weekday or self.rng.random() < 0.1:
                    start = START + timedelta(days=day, hours=int(hour))
                    meetings.append(Busy(start, start + timedelta(hours=1)))
            person.meetings = tuple(sorted(meetings, key=lambda b: b.start))
            person.energy = float(self.rng.integers(1, 6))
            for history in (person.learned, person.random_time, person.fixed_time):
                history.pushes_today = 0

    def _peak(self, person: Person, at: datetime) -> float | None:
        return PEAKS[person.chronotype].get(at.hour)

    def open_probability(self, person: Person, at: datetime, history: _History) -> float:
        """The hidden chance that a push at `at` is opened within 30 minutes."""
        peak = self._peak(person, at)
        if peak is not None:
            p = peak
        elif at.weekday() < 5 and 9 <= at.hour < 17:
            p = OFF_PEAK["workday"]
        else:
            p = OFF_PEAK["free"]
        if any(b.start <= at < b.end for b in person.meetings):
            p *= 0.15
        elif any(at < b.start <= at + timedelta(hours=1) for b in person.meetings):
            p *= 0.7
        if history.last_push is not None:
            since = at - history.last_push
            if since < timedelta(hours=1):
                p *= 0.2
            elif since < timedelta(hours=2):
                p *= 0.5
        p *= 0.9**history.pushes_today
        if person.energy <= 2:
            p *= 0.8
        return min(1.0, p)

    def visit_probability(self, person: Person, at: datetime) -> float:
        """The chance the person comes to the page on their own within 30 minutes."""
        return VISIT["peak"] if self._peak(person, at) is not None else VISIT["off"]

    def context(self, person: Person, at: datetime) -> list[dict[str, object]]:
        day = at.replace(hour=0, minute=0)
        free_busy = FreeBusy(day, day + timedelta(days=1), person.meetings)
        signals = {"energy": trusted("energy", person.energy, day + timedelta(hours=7), "checkin")}
        since = at - timedelta(days=ENGAGEMENT_DAYS)
        recency = Recency(
            last_tip_at=person.learned.last_push,
            last_visit_at=person.last_visit,
            pushes_today=person.learned.pushes_today,
            engaged_at=[t for t in person.engaged_at if t >= since],
        )
        return [
            dict(obj)
            for obj in timing_context(person.profile, signals, at, recency, free_busy=free_busy)
        ]


class TimingDriver(Protocol):
    """How the simulation reaches a timing policy: decide, reward, close the windows."""

    def decide(
        self,
        person: str,
        event_id: str,
        context: list[dict[str, Any]],
        ahead: Sequence[list[dict[str, Any]]],
        pushes_left: int,
    ) -> str:
        """The action chosen (`send` or `wait`) at one decision point of `person`, with the
        contexts of the day's remaining points and the pushes left of the dose."""
        ...

    def reward(self, event_id: str, value: float, reaction: str) -> None:
        """Add `value` to the decision's reward (the window sums them)."""
        ...

    def close(self, event_ids: Sequence[str]) -> None:
        """The reward windows of these decisions have closed: learn their sums."""
        ...


@dataclass
class SurfaceDriver:
    """The timing surface of an in-process app (`Services`): what the notifier's decision
    points call, on simulated time."""

    services: Any

    @property
    def timing(self) -> Timing:
        timing: Timing = self.services.timing
        return timing

    def decide(
        self,
        person: str,
        event_id: str,
        context: list[dict[str, Any]],
        ahead: Sequence[list[dict[str, Any]]],
        pushes_left: int,
    ) -> str:
        decision = self.timing.choose(
            person, event_id, context, ahead=ahead, pushes_left=pushes_left
        )
        return decision.chosen.id

    def reward(self, event_id: str, value: float, reaction: str) -> None:
        self.timing.reward(event_id, value, reaction)

    def close(self, event_ids: Sequence[str]) -> None:
        # The sweep learns a summing surface's decisions when their window closes on the real
        # clock; simulated half hours pass in milliseconds, so the run closes them itself.
        learned = self.services.learner.learn_events(list(event_ids), allow_default=True)
        if learned != len(event_ids):
            raise RuntimeError(f"the learner learned {learned} of {len(event_ids)} decisions")


@dataclass
class LoopDriver:
    """A running server's Personalizer-compatible rank and reward calls (one reward per
    decision: its sum, sent when its window closes)."""

    loop: Loop
    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    def decide(
        self,
        person: str,
        event_id: str,
        context: list[dict[str, Any]],
        ahead: Sequence[list[dict[str, Any]]],
        pushes_left: int,
    ) -> str:
        # A Personalizer rank call sees one moment: its policy is not paced.
        actions = [{"id": a.id, "features": [dict(f) for f in a.features]} for a in ACTIONS]
        answer = self.loop.rank(
            {"contextFeatures": context, "actions": actions, "eventId": event_id}
        )
        chosen: str = answer["rewardActionId"]
        return chosen

    def reward(self, event_id: str, value: float, reaction: str) -> None:
        self.sums[event_id] += value

    def close(self, event_ids: Sequence[str]) -> None:
        for event_id in event_ids:
            self.loop.reward(event_id, self.sums.pop(event_id, 0.0))


@dataclass
class TimingReport:
    days: int
    people: int
    decisions: int = 0
    pushes: int = 0
    seconds: float = 0.0
    learned: list[float] = field(default_factory=list)
    """Per push of the learned policy: (day, open probability)."""
    random_time: list[float] = field(default_factory=list)
    fixed_time: list[float] = field(default_factory=list)
    day_of: dict[str, list[int]] = field(default_factory=dict)

    def rates(self, from_day: int = 0) -> dict[str, float]:
        """Engagement per push of each strategy on days `from_day` on, and the lifts."""
        out: dict[str, float] = {}
        for name in ("learned", "random_time", "fixed_time"):
            values = getattr(self, name)
            days = self.day_of[name]
            kept = [v for v, d in zip(values, days, strict=True) if d >= from_day]
            out[name] = float(np.mean(kept)) if kept else float("nan")
        out["lift_vs_random_time"] = out["learned"] / out["random_time"] - 1.0
        out["lift_vs_fixed_time"] = out["learned"] / out["fixed_time"] - 1.0
        return out

    def as_json(self) -> dict[str, object]:
        """The figures over the second half of the days (the first half is learning)."""
        evaluated = self.days // 2
        rates = self.rates(evaluated)
        return {
            **rates,
            "all_days": self.rates(0),
            "evaluated_from_day": evaluated,
            "days": self.days,
            "people": self.people,
            "decisions": self.decisions,
            "pushes": self.pushes,
            "seconds": round(self.seconds, 1),
        }


def run_timing(
    driver: TimingDriver,
    world: TimingWorld,
    *,
    days: int,
    push_cost: float = PUSH_COST,
    run_id: str | None = None,
    on_day: Callable[[int], None] | None = None,
) -> TimingReport:
    """Simulate `days` days of decision points for every person of `world` (see the module doc).

    Decisions go through `driver` in time order (every person's 08:00, then every person's
    08:30, ...); a decision's rewards are given as they are drawn and its window is closed when
    its half hour ends, before the next decision point. Event ids are
    `sim-timing-{run_id}-{i}`, so a fixed run id on a fresh server replays the same run.
    """
    if days < 1:
        raise ValueError(f"`days` must be at least 1 (got {days})")
    run_id = run_id or uuid.uuid4().hex[:12]
    report = TimingReport(days, len(world.people))
    report.day_of = {"learned": [], "random_time": [], "fixed_time": []}
    started = time.perf_counter()
    for day in range(days):
        world.new_day(day)
        slots = world.slots(day)
        sends: dict[str, int] = {person.name: 0 for person in world.people}
        for n, at in enumerate(slots):
            decided = []
            for person in world.people:
                if person.learned.pushes_today >= DOSE:
                    continue  # past the daily dose: not a decision point
                event_id = f"sim-timing-{run_id}-{report.decisions}"
                action = driver.decide(
                    person.profile.principal,
                    event_id,
                    world.context(person, at),
                    [world.context(person, later) for later in slots[n + 1 :]],
                    DOSE - person.learned.pushes_today,
                )
                decided.append(event_id)
                report.decisions += 1
                if action == SEND:
                    p = world.open_probability(person, at, person.learned)
                    report.learned.append(p)
                    report.day_of["learned"].append(day)
                    person.learned.last_push = at
                    person.learned.pushes_today += 1
                    sends[person.name] += 1
                    driver.reward(event_id, -push_cost, "pushed")
                    engaged = world.rng.random() < p
                    reaction = "opened"
                else:
                    engaged = world.rng.random() < world.visit_probability(person, at)
                    reaction = "visited"
                    if engaged:
                        person.last_visit = at
                if engaged:
                    person.engaged_at.append(at)
                    driver.reward(event_id, 1.0, reaction)
            driver.close(decided)
        for person in world.people:
            _baselines(world, person, slots, sends[person.name], day, report)
        report.pushes += sum(sends.values())
        if on_day is not None:
            on_day(day + 1)
    report.seconds = time.perf_counter() - started
    return report


def _baselines(
    world: TimingWorld,
    person: Person,
    slots: list[datetime],
    pushes: int,
    day: int,
    report: TimingReport,
) -> None:
    """The same number of pushes, at random decision points and at fixed times.

    Random time is `RANDOM_TIME_DRAWS` independent uniform draws of `pushes` of the day's
    decision points (what sending with probability "pushes left / points left" at each point
    draws: the dose spread over the whole day); each push's figure is its mean over the draws,
    the expected engagement of random-time delivery rather than one draw's luck. A day's draws
    start alike: the previous evening's push is too far back to habituate.
    """
    if pushes == 0:
        return
    start = person.random_time
    draws = []
    for _ in range(RANDOM_TIME_DRAWS):
        history = _History(start.last_push, start.pushes_today)
        picked = sorted(world.baseline_rng.choice(len(slots), pushes, replace=False))
        draws.append([_push(world, person, slots[i], history) for i in picked])
    person.random_time = history
    report.random_time.extend(float(v) for v in np.mean(draws, axis=0))
    report.day_of["random_time"].extend([day] * pushes)
    fixed = sorted(
        slots[0].replace(hour=hour, minute=minute) for hour, minute in FIXED_TIMES[:pushes]
    )
    for at in fixed:
        report.fixed_time.append(_push(world, person, at, person.fixed_time))
        report.day_of["fixed_time"].append(day)


def _push(world: TimingWorld, person: Person, at: datetime, history: _History) -> float:
    """A baseline's push at `at`: its open probability, then the push joins `history`."""
    p = world.open_probability(person, at, history)
    history.last_push = at
    history.pushes_today += 1
    return p
