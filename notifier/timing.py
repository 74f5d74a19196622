"""The timing surface's decision points: at each, send a tip now or wait (ADR 0014).

`Timing` runs inside the notifier's loop (a thread of `oo serve`, or `oo notifier`). Each pass,
for everyone with a device and a dose above 0 who is awake: the slot `now` falls in is claimed
(once across notifiers, `notifier.timing_points`; a claim left undecided past its lease, by a
notifier that died or failed, is taken over while the slot lasts), the context is built
(`integrations.timing.timing_context`), the timing policy decides, paced over the rest of the
day (`notifier.pacing`: a push now only when now is among the day's best moments left for the
pushes left), and the decision is logged with its pmf like every decision. When `send` wins,
the tips surface picks the tip (logged with its activation deferred until the notification is
opened) and the push goes through the outbox under that tip's event id.

A point taken over is decided again without doing anything twice: the timing decision's event
id is the slot's and the tip's is derived from it, so the decider answers with what the dead
notifier logged; the push cost is charged once (`_charge`); the outbox keeps one push per tip's
event id.

Rewards, summed over the surface's 30-minute window: a send starts at minus the push cost and
gains 1 when its notification is opened (`opened`); a wait gains 1 when the person comes to the
page on their own (`visited`). The api calls those two; the learner joins them when the window
closes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bandit.decide import Decider
from bandit.events import Decision, Features, utcnow
from bandit.metrics import REWARDS
from bandit.store import PgQuery, RewardOutcome, Store
from integrations.connections import Integrations
from integrations.context import SIGNAL_FRESHNESS
from integrations.history import HistoryCache
from integrations.profiles import People, Profile
from integrations.timing import ACTIONS, ENGAGEMENT_DAYS, SEND, TIMING, Recency, timing_context
from integrations.tip_decisions import Quiet, Serving, TipDecisions, TipGone
from integrations.todoist import PROVIDER as TODOIST
from notifier.metrics import DECISION_POINTS
from notifier.outbox import PushMessage
from notifier.pacing import at_point
from notifier.push import Push, tip_url
from notifier.schedule import Slot, TimingSettings, awake, later_today, slot
from notifier.timing_points import POINT_LEASE, TimingPoints, point_event_id

log = logging.getLogger(__name__)

MAX_REMEMBERED = 100_000
"""Slots this process remembers (a pass skips them without a query until they are due)."""


@dataclass(frozen=True, slots=True)
class TimingOutcome:
    person: str
    event_id: str
    action: str
    tip_event_id: str | None = None


class Timing:
    def __init__(
        self,
        *,
        store: Store,
        people: People,
        integrations: Integrations,
        history: HistoryCache,
        decider: Decider,
        serving: Serving,
        tips: TipDecisions,
        push: Push,
        points: TimingPoints,
        reward_window: Callable[[], timedelta],
        exploration: Callable[[], float],
        publish: Callable[[str, str], None],
        push_cost: float,
    ) -> None:
        if not 0.0 <= push_cost <= 1.0:
            raise ValueError(f"`push_cost` must be in [0, 1] (got {push_cost})")
        self.store = store
        self.people = people
        self.integrations = integrations
        self.history = history
        self.decider = decider
        self.serving = serving
        self.tips = tips
        self.push = push
        self.points = points
        self.reward_window = reward_window
        self.exploration = exploration
        self.publish = publish
        self.push_cost = push_cost
        self._seen: dict[tuple[str, datetime], datetime | None] = {}
        """Points this process looked at: when to look again (a claim's lease lapses), or
        None when there is nothing left to do (decided, or past the dose)."""

    # ------------------------------------------------------------------------------ deciding

    def run_once(self, now: datetime | None = None) -> list[TimingOutcome]:
        """Decide every decision point that is due now; what was decided."""
        now = now or utcnow()
        outcomes = []
        for person, settings in self.points.reachable():
            profile = self.people.profile(person)
            if not awake(profile, now):
                continue
            point = slot(profile, now, settings.every_minutes)
            key = (person, point.at)
            if not self._due(key, now):
                continue
            pushes, last_push = self.points.pushed(person, point.local_day)
            if pushes >= settings.pushes_per_day:
                self._remember(key, None)  # past the daily dose: not a decision point
                continue
            event_id = point_event_id(person, point.at)
            if not self.points.claim(person, point, event_id, now):
                # Decided, or another notifier's: looked at again once its claim lapses.
                self._remember(key, self.points.held_until(person, point))
                continue
            # A point this process fails is taken over after the lease like a dead
            # notifier's, by this process or another: what failed (a source, the database)
            # is often passing, and a point left undecided is a moment the surface never
            # learns from. The lease paces the retries; the slot's end stops them.
            self._remember(key, now + POINT_LEASE)
            try:
                outcome = self.decide(profile, point, settings, event_id, now, pushes, last_push)
            except Exception:
                DECISION_POINTS.labels("failed").inc()
                log.exception("timing: the decision point of %s at %s failed", person, point.at)
                continue
            self._remember(key, None)
            outcomes.append(outcome)
        return outcomes

    def decide(
        self,
        profile: Profile,
        point: Slot,
        settings: TimingSettings,
        event_id: str,
        now: datetime,
        pushes: int,
        last_push: datetime | None,
    ) -> TimingOutcome:
        """Log the timing decision of one claimed point and act on it."""
        person = profile.principal
        signals = self.people.latest_signals(person, now - SIGNAL_FRESHNESS)
        gathered = self.integrations.gather(person, now, profile.zone, todos=True)
        recency = self._recency(person, now, pushes, last_push)
        tasks = gathered.tasks if TODOIST in gathered.used else None

        def context_at(at: datetime) -> Features:
            return timing_context(
                profile, signals, at, recency, free_busy=gathered.free_busy, tasks=tasks
            )

        # The rest of the day as it will look if nothing is pushed before (pacing weighs now
        # against it): the same person, signals and sources, each later point's clock.
        ahead = [context_at(at) for at in later_today(profile, point, settings.every_minutes)]
        decision = self.choose(
            person,
            event_id,
            context_at(now),
            ahead=ahead,
            pushes_left=settings.pushes_per_day - pushes,
            missing=gathered.missing,
        )
        action = decision.chosen.id
        tip_event_id = self._send(person, event_id, now) if action == SEND else None
        self.points.decided(person, point, action, tip_event_id)
        DECISION_POINTS.labels(action).inc()
        return TimingOutcome(person, event_id, action, tip_event_id)

    def choose(
        self,
        person: str,
        event_id: str,
        context: Features,
        *,
        ahead: Sequence[Features],
        pushes_left: int,
        missing: Sequence[str] = (),
    ) -> Decision:
        """Send or wait at one decision point, logged with its pmf under the policy that
        serves `person` (an experiment's arm, or the surface's policy), paced over `ahead`, the
        contexts of the day's remaining points, for the `pushes_left`; the random-time rule
        sends with probability pushes left / points left instead (`notifier.pacing`)."""
        policy, experiment, arm = self.serving(TIMING, person)
        served = at_point(
            policy,
            send=SEND,
            ahead=ahead,
            pushes_left=pushes_left,
            floor=self.exploration() / len(ACTIONS),
        )
        return self.decider.decide(
            policy=served,
            surface=TIMING,
            principal=person,
            event_id=event_id,
            context=context,
            actions=ACTIONS,
            experiment=experiment,
            arm=arm,
            missing_sources=missing,
        ).decision

    def _send(self, person: str, event_id: str, now: datetime) -> str | None:
        """The tips surface picks the tip; the outbox takes the push (None: nothing pushed)."""
        try:
            made = self.tips.decide(person, now, activate=False, event_id=f"{event_id}-tip")
        except TipGone as gone:
            # A notifier that died after logging the tip left it unpushed, and the tip cannot
            # be shown any more (its task was done meanwhile): nothing to push, and retrying
            # until the slot ends would not bring it back.
            log.info("timing: %s's send at %s has nothing left to push: %s", person, now, gone)
            return None
        if isinstance(made, Quiet):  # pragma: no cover - decision points avoid quiet hours
            return None
        tip_event_id = made.decision.event_id
        self._charge(event_id)
        self.push.enqueue(
            person,
            tip_event_id,
            PushMessage(made.tip.title, made.tip.body, tip_url(tip_event_id)),
            timing_event_id=event_id,
        )
        return tip_event_id

    def _charge(self, event_id: str) -> None:
        """The push's cost, summed with the open that may follow (ADR 0014), charged once.

        Charged before the push is enqueued, so it is always the send's first reward (no open
        can come before its push) and the "earliest" aggregation records it once: a point
        decided again after its notifier died past this step is not charged twice."""
        outcome = self.store.record_reward(
            event_id, -self.push_cost, reaction="pushed", window=self.reward_window()
        )
        if outcome is not None and outcome.created:
            self._counted(event_id, "pushed", outcome)

    def _recency(
        self, person: str, now: datetime, pushes: int, last_push: datetime | None
    ) -> Recency:
        since = now - timedelta(days=ENGAGEMENT_DAYS)
        moments = self.history.get(person, now).moments()
        pushed = self.points.pushed_tips(person, since)
        visits = [at for event_id, at, _ in moments if event_id not in pushed]
        return Recency(
            last_tip_at=last_push,
            last_visit_at=max(visits) if visits else None,
            pushes_today=pushes,
            engaged_at=[at for _, at, reacted in moments if reacted and at >= since],
        )

    def _due(self, key: tuple[str, datetime], now: datetime) -> bool:
        if key not in self._seen:
            return True
        again = self._seen[key]
        return again is not None and now >= again

    def _remember(self, key: tuple[str, datetime], again: datetime | None) -> None:
        if key not in self._seen and len(self._seen) >= MAX_REMEMBERED:
            self._seen.clear()  # the database still refuses a second claim
        self._seen[key] = again

    # ------------------------------------------------------------------------------ rewards

    def opened(self, person: str, tip_event_id: str) -> bool:
        """The notification of a pushed tip was opened: its timing decision earns 1."""
        timing_event_id = self.push.outbox.timing_event_id(person, tip_event_id)
        if timing_event_id is None:
            return False
        return self.reward(timing_event_id, 1.0, "opened")

    def waiting(self, person: str, now: datetime) -> bool:
        """Whether a visit at `now` would reward one of the person's waits (`visited`): most
        visits find none, so the recommend path asks with this read before it writes."""
        return bool(self.points.open_waits(person, now, self.reward_window()))

    def waiting_query(self, person: str, now: datetime) -> PgQuery[bool]:
        """`waiting`'s read on PostgreSQL and its decoding, for a sync or an async connection
        (`api.services.recommend_reads`)."""
        return self.points.open_waits_query(person, now, self.reward_window()).then(bool)

    def visited(self, person: str, now: datetime) -> int:
        """The person came to the page on their own: each wait still in its window earns 1."""
        rewarded = 0
        for event_id in self.points.visited(person, now, self.reward_window()):
            rewarded += self.reward(event_id, 1.0, "visited")
        return rewarded

    def reward(self, event_id: str, value: float, reaction: str) -> bool:
        """Add `value` to a timing decision's reward (summed over its window); False when the
        window had closed or the decision is unknown."""
        outcome = self.store.record_reward(
            event_id, value, reaction=reaction, window=self.reward_window(), aggregation="sum"
        )
        return self._counted(event_id, reaction, outcome)

    def _counted(self, event_id: str, reaction: str, outcome: RewardOutcome | None) -> bool:
        """Count a recorded reward and tell the learner; False when it was not (late or
        unknown)."""
        if outcome is None or outcome.late:
            return False
        REWARDS.labels(TIMING, reaction, "false").inc()
        self.publish("reward", event_id)
        return True
