"""The tips decision as a service: which tip a person sees now, decided and logged.

Both front doors call it: the api's `POST /v1/recommend` (the person opened the page) and the
notifier's timing surface (a push won: its tip is decided here with activation deferred until
the notification is opened). The policy that decides is handed in (`serving`: the surface's,
or the person's experiment arm's), so this module needs nothing from either front door.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from bandit.decide import Decider, DecisionRequest, Outcome
from bandit.events import Decision, new_event_id
from bandit.policy import Policy
from bandit.store import PgQuery
from integrations.connections import (
    Gathered,
    Integrations,
    fetches,
    live_candidates,
    todo_note,
)
from integrations.context import SIGNAL_FRESHNESS, TIPS, TipSource, build_context, with_history
from integrations.history import HISTORY_DAYS, MAX_EVENTS, History, HistoryCache
from integrations.profiles import ALL_KINDS, People, PersonMoment, Profile
from integrations.signals import Signal
from integrations.todoist import Task

TODO_CANDIDATES = 10
"""At most this many open tasks join the catalog tips as candidates (most urgent first)."""

Serving = Callable[[str, str], tuple[Policy, str | None, str | None]]
"""(surface, unit) -> the policy deciding, its experiment and arm (None outside experiments)."""


@dataclass(frozen=True, slots=True)
class ShownTip:
    """A chosen action as the page shows it (a todo's title comes from the fetched task)."""

    id: str
    kind: str
    title: str
    body: str
    category: str
    effort_minutes: int


@dataclass(frozen=True, slots=True)
class TipDecision:
    decision: Decision
    tip: ShownTip
    replayed: bool


class TipGone(LookupError):
    """A logged decision's tip can no longer be shown: its Todoist task has closed (or left
    the fetched tasks) since, or the tip has left the catalog. Only a decision answered again
    from the log meets this (a notifier taking over a dead one's send): a new decision chooses
    among what can be shown now."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """A tip decision ready to be made: the decider's request, and what showing the chosen tip
    needs (the fetched tasks, the moment and the person's time zone)."""

    request: DecisionRequest
    tasks: Mapping[str, Task]
    now: datetime
    zone: tzinfo


@dataclass(frozen=True, slots=True)
class Moment:
    """What a tip decision reads about a person at `now`: their profile, newest fresh signal
    of each type, action id -> when last chosen (within the cooldown), integration provider ->
    token status, and their history of reactions."""

    person: str
    now: datetime
    profile: Profile
    signals: Mapping[str, Signal]
    recent: Mapping[str, datetime]
    statuses: Mapping[str, str]
    history: History

    @property
    def wants_todos(self) -> bool:
        """Whether open tasks may be candidates (the person wants todos, or named no kind)."""
        wanted = [k for k in self.profile.kinds if k in ALL_KINDS]
        return not wanted or "todo" in wanted


@dataclass(frozen=True, slots=True)
class Quiet:
    """Quiet hours cover now: no tip until `until` (aware, local)."""

    until: datetime


class TipDecisions:
    def __init__(
        self,
        *,
        people: People,
        integrations: Integrations,
        tips: TipSource,
        history: HistoryCache,
        decider: Decider,
        serving: Serving,
        cooldown: timedelta,
    ) -> None:
        self.people = people
        self.integrations = integrations
        self.tips = tips
        self.history = history
        self.decider = decider
        self.serving = serving
        self.cooldown = cooldown

    def decide(
        self, person: str, now: datetime, *, activate: bool = True, event_id: str | None = None
    ) -> TipDecision | Quiet:
        """One tip for `person` at `now`, logged before it returns (outside quiet hours)."""
        prepared = self.prepare(person, now, activate=activate, event_id=event_id)
        if isinstance(prepared, Quiet):
            return prepared
        return self._made(prepared, self.decider.decide(**prepared.request))

    def prepare(
        self, person: str, now: datetime, *, activate: bool = True, event_id: str | None = None
    ) -> Prepared | Quiet:
        """Everything the decision needs, read and gathered: the person's moment, the live
        sources (within their deadline) and the candidates. Blocking I/O: on a worker thread
        when called from the event loop (the api's recommend takes the steps one by one)."""
        moment = self.read(person, now)
        if isinstance(moment, Quiet):
            return moment
        return self.assemble(moment, self.gather(moment), activate=activate, event_id=event_id)

    def read(self, person: str, now: datetime) -> Moment | Quiet:
        """What the store knows of the person at `now` (one statement on PostgreSQL, a few
        indexed reads on SQLite), or Quiet when their quiet hours cover now. The history comes
        from memory when warm (`HistoryCache.cached`), else from the log."""
        found = self.people.moment(person, TIPS, **self._since(now))
        return self._moment(person, now, found)

    def read_query(self, person: str, now: datetime) -> PgQuery[Moment | Quiet]:
        """`read`'s statement on PostgreSQL and its decoding, for a sync or an async
        connection (`api.services.recommend_reads`)."""
        found = self.people.moment_query(person, TIPS, **self._since(now))
        return found.then(lambda moment: self._moment(person, now, moment))

    def _since(self, now: datetime) -> dict[str, datetime]:
        """How far back `read` looks: fresh signals, and the choices within the cooldown."""
        return {"signals_since": now - SIGNAL_FRESHNESS, "recent_since": now - self.cooldown}

    def _moment(self, person: str, now: datetime, found: PersonMoment) -> Moment | Quiet:
        profile, signals, recent, statuses = found
        next_tip = profile.next_tip_at(now)
        if next_tip is not None:
            return Quiet(next_tip)
        return Moment(
            person, now, profile, signals, recent, statuses, self.history.get(person, now)
        )

    def reads_quickly(self, person: str, now: datetime) -> bool:
        """Whether `read` is a few small indexed lookups: the person's history is in memory (no
        load from the log), and it holds fewer than `MAX_EVENTS` of their decisions within the
        cooldown, which bounds the rows the recent-choices read visits (one person calling
        recommend in a loop has thousands a day: ~1 µs each on SQLite)."""
        history = self.history.cached(person)
        return (
            history is not None
            and self.cooldown <= timedelta(days=HISTORY_DAYS)
            and history.since(now - self.cooldown) < MAX_EVENTS
        )

    def fetches(self, moment: Moment) -> bool:
        """Whether `gather` would ask a provider over the network for this moment; when not,
        it answers at once from the statuses alone."""
        return fetches(moment.statuses, todos=moment.wants_todos)

    def gather(self, moment: Moment) -> Gathered:
        """Todoist and calendar, within one deadline; a slow or failing one is left out."""
        return self.integrations.gather(
            moment.person,
            moment.now,
            moment.profile.zone,
            todos=moment.wants_todos,
            statuses=moment.statuses,
        )

    def assemble(
        self,
        moment: Moment,
        gathered: Gathered,
        *,
        activate: bool = True,
        event_id: str | None = None,
    ) -> Prepared:
        """The decider's request from what was read and gathered: CPU work only."""
        profile, now = moment.profile, moment.now
        context, local = build_context(profile, moment.signals, now)
        live = live_candidates(
            gathered, now, profile.zone, recent=moment.recent, limit=TODO_CANDIDATES
        )
        context += live.context
        event_id = event_id or new_event_id()
        catalog = self.tips.candidates(profile, local, moment.recent, event_id)
        history = moment.history.features(now, profile.zone)
        candidates = with_history(
            catalog.actions + live.actions, catalog.lines + live.lines, history, self.tips.category
        )
        policy, experiment, arm = self.serving(TIPS, moment.person)
        request: DecisionRequest = {
            "policy": policy,
            "surface": TIPS,
            "principal": moment.person,
            "event_id": event_id,
            "context": context,
            "actions": candidates.actions,
            "action_lines": candidates.lines,
            "activate": activate,
            "experiment": experiment,
            "arm": arm,
            "missing_sources": gathered.missing,
        }
        return Prepared(request, live.tasks, now, profile.zone)

    async def decide_prepared(self, prepared: Prepared) -> TipDecision:
        """Decide and log a prepared tip on the event loop (ADR 0016): choosing is CPU work on
        the served model, and the decision's commit is awaited, not waited for on a thread."""
        return self._made(prepared, await self.decider.decide_async(**prepared.request))

    def _made(self, prepared: Prepared, outcome: Outcome) -> TipDecision:
        decision = outcome.decision
        if not outcome.replayed:
            person = prepared.request["principal"]
            self.history.shown(person, decision.event_id, decision.created_at, decision.chosen.id)
        tip = self.shown(decision.chosen.id, prepared.tasks, prepared.now, prepared.zone)
        return TipDecision(decision, tip, outcome.replayed)

    def shown(
        self, action_id: str, tasks: Mapping[str, Task], now: datetime, tz: tzinfo
    ) -> ShownTip:
        """The chosen action as the page shows it; a todo's title comes from the fetched task."""
        task = tasks.get(action_id)
        if task is not None:
            return ShownTip(
                id=action_id,
                kind="todo",
                title=task.title or "A task from Todoist",
                body=todo_note(task, now, tz),
                category="todoist",
                effort_minutes=task.duration_minutes or 0,
            )
        tip = self.tips.tip(action_id)
        if tip is None:
            raise TipGone(f"tip {action_id!r} is neither an open task nor in the catalog")
        return ShownTip(
            id=tip.id,
            kind=tip.kind,
            title=tip.title,
            body=tip.body,
            category=tip.category,
            effort_minutes=tip.effort_minutes,
        )
