"""The timing surface: its registration, its two actions and its context builder.

At each decision point (see `notifier.schedule`) the timing policy chooses between two actions,
`send` (push a tip now) and `wait`. Both are logged decisions with their probabilities, so a
"wait" is evidence, never a silent skip (a micro-randomized design), and the timing policy
evaluates and A/B tests like any other.

Context, one feature object per source, built from what the tips surface already reads:

- the tips context (`integrations.context.build_context`): local clock, mood, energy;
- ``calendar``: free/busy now and in the next hours (`integrations.calendar.calendar_features`,
  from the same live fetch under the same deadline);
- ``todos``: open Todoist tasks due within two hours, and overdue (`integrations.todoist.due_soon`);
- ``recency``: minutes since the last pushed tip and since the person's last visit, and how many
  tips were pushed today;
- ``engagement``: the person's own engagement by hour: how often they reacted to a tip around
  this local hour over the last four weeks, and what share of their reactions that is.

Reward (ADR 0014), summed over the reward window (30 minutes): a `send` earns 1 when its
notification is opened within it, less the push's cost (`PUSH_COST`, `OO_TIMING_PUSH_COST`);
a `wait` earns 1 when the person came to the page on their own within it, else nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from bandit.events import Action, FeatureObject, Features, JSONValue
from bandit.surfaces import Surface
from integrations.calendar import FreeBusy, calendar_features
from integrations.context import build_context
from integrations.profiles import Profile, Signal
from integrations.todoist import Task, due_soon

TIMING = "timing"
REWARD_WINDOW = timedelta(minutes=30)
TIMING_SURFACE = Surface(
    TIMING,
    reward_wait=REWARD_WINDOW,
    default_reward=0.0,
    reward_aggregation="sum",
    exploration=0.02,
)
"""When a tip is pushed: experiments assign each person; a decision's rewards (the push's cost,
the open or the visit) are summed over 30 minutes and learned when that window closes. A 2%
uniform floor, not 5%: every uniform `send` spends a push of the daily dose at a random time
(28 points a day: 5% sends 0.7 of 3 pushes at random); 1% starved learning (ADR 0014)."""

PUSH_COST = 0.1
"""What a push costs its decision's reward: the price of the daily dose. Without it a
decision-by-decision policy spends the dose on the first moments that beat waiting at all;
with it, a push must beat waiting by this much (ADR 0014)."""

SEND, WAIT = "send", "wait"
ACTIONS: tuple[Action, ...] = (
    Action.kept(SEND, [{"when": {"act": SEND}}]),
    Action.kept(WAIT, [{"when": {"act": WAIT}}]),
)
"""The two candidates of every timing decision, in this order."""

ENGAGEMENT_DAYS = 28
NEAR_HOURS = 1
"""Engagement "around this hour": within one local hour either side."""


@dataclass(frozen=True, slots=True)
class Recency:
    """What the person's recent pushes and visits say at a decision point."""

    last_tip_at: datetime | None = None
    """The last tip pushed to them (None: never)."""
    last_visit_at: datetime | None = None
    """The last time they opened the page on their own (None: never)."""
    pushes_today: int = 0
    engaged_at: Sequence[datetime] = ()
    """When they reacted to a tip, over the last `ENGAGEMENT_DAYS` days."""


def _since(now: datetime, then: datetime | None) -> str:
    if then is None:
        return "never"
    minutes = (now - then).total_seconds() / 60
    for limit, label in ((30, "m0-30"), (60, "m30-60"), (120, "h1-2"), (240, "h2-4")):
        if minutes < limit:
            return label
    return "h12+" if minutes >= 720 else "h4-12"


def _count(n: int) -> str:
    if n == 0:
        return "none"
    if n == 1:
        return "once"
    return "few" if n <= 4 else "many"


def recency_features(recency: Recency, now: datetime) -> FeatureObject:
    pushes = recency.pushes_today
    return {
        "recency": {
            "since_tip": _since(now, recency.last_tip_at),
            "since_visit": _since(now, recency.last_visit_at),
            "sent_today": str(pushes) if pushes < 3 else "3+",
        }
    }


def engagement_features(
    engaged_at: Iterable[datetime], now: datetime, profile: Profile
) -> FeatureObject:
    """The ``engagement`` namespace: reactions around this local hour over four weeks.

    ``near``: how many (``none``, ``once``, ``few`` 2-4, ``many`` 5+); ``share``: their share
    of all the person's reactions in that span, smoothed toward a uniform day and rounded to
    0.05: ``(near + 3/24) / (all + 1)``, 1/8 with no reaction yet (three hours of 24).
    """
    since = now - timedelta(days=ENGAGEMENT_DAYS)
    hour = profile.local(now).hour
    near = total = 0
    for moment in engaged_at:
        if not since <= moment <= now:
            continue
        total += 1
        distance = abs(profile.local(moment).hour - hour)
        if min(distance, 24 - distance) <= NEAR_HOURS:
            near += 1
    width = 2 * NEAR_HOURS + 1
    share = (near + width / 24) / (total + 1)
    values: dict[str, JSONValue] = {"near": _count(near), "share": round(share * 20) / 20}
    return {"engagement": values}


def timing_context(
    profile: Profile,
    signals: Mapping[str, Signal],
    now: datetime,
    recency: Recency,
    *,
    free_busy: FreeBusy | None = None,
    tasks: Sequence[Task] | None = None,
) -> Features:
    """Feature objects of one decision point (see the module doc); a source the person has not
    connected, or that missed the live-source deadline, is left out."""
    context, _ = build_context(profile, signals, now)
    if free_busy is not None:
        context.append(calendar_features(free_busy, now, profile.zone))
    if tasks is not None:
        context.append(due_soon(tasks, now, profile.zone))
    context.append(recency_features(recency, now))
    context.append(engagement_features(recency.engaged_at, now, profile))
    return context
