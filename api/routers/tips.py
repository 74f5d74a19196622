"""The tips product: one tip, a reaction, and the signals that shape the next one."""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo

from fastapi import APIRouter, Depends, Response, status

from api.deps import PersonDecisionDep, PersonDep, ServicesDep, owned_decision
from api.errors import Conflict
from api.ratelimit import Bucket, limited
from api.schemas.tips import (
    FeedbackRequest,
    FeedbackResponse,
    RecommendRequest,
    RecommendResponse,
    SignalIn,
    TipPublic,
)
from api.services.process import Services
from api.services.surfaces import TIPS
from bandit.events import utcnow
from bandit.metrics import RECOMMEND_LATENCY, REWARDS
from integrations.connections import live_candidates, todo_note
from integrations.context import SIGNAL_FRESHNESS, build_context, with_history
from integrations.profiles import ALL_KINDS
from integrations.todoist import Task, action_id

router = APIRouter(prefix="/v1", tags=["tips"])

TODO_CANDIDATES = 10
"""At most this many open tasks join the catalog tips as candidates (most urgent first)."""


@router.post(
    "/recommend",
    response_model=RecommendResponse,
    responses={204: {"description": "Quiet hours: `X-Next-Tip-At` says when the next tip is due"}},
)
def recommend(
    services: ServicesDep, person: PersonDep, body: RecommendRequest | None = None
) -> RecommendResponse | Response:
    """One tip for this person, now. The decision is logged before the answer leaves."""
    with RECOMMEND_LATENCY.time():
        now = utcnow()
        cooldown = timedelta(hours=services.settings.tip_cooldown_hours)
        profile, signals, recent, statuses = services.people.moment(
            person, TIPS, signals_since=now - SIGNAL_FRESHNESS, recent_since=now - cooldown
        )
        next_tip = profile.next_tip_at(now)
        if next_tip is not None:
            wait = max(1, math.ceil((next_tip - now).total_seconds()))
            return Response(
                status_code=status.HTTP_204_NO_CONTENT,
                headers={"Retry-After": str(wait), "X-Next-Tip-At": next_tip.isoformat()},
            )
        context, local = build_context(profile, signals, now)
        # Todoist and calendar, within one deadline; a slow or failing one is left out.
        wanted = [k for k in profile.kinds if k in ALL_KINDS] or list(ALL_KINDS)
        gathered = services.integrations.gather(
            person, now, profile.zone, todos="todo" in wanted, statuses=statuses
        )
        live = live_candidates(gathered, now, profile.zone, recent=recent, limit=TODO_CANDIDATES)
        context += live.context
        event_id = uuid.uuid4().hex
        catalog = services.tips.candidates(profile, local, recent, event_id)
        # The person's own record with each candidate's category: no query when warm.
        history = services.history.get(person, now).features(now, profile.zone)
        candidates = with_history(
            catalog.actions + live.actions,
            catalog.lines + live.lines,
            history,
            services.tips.category,
        )
        policy, experiment, arm = services.serving_policy(TIPS, person)
        outcome = services.decider.decide(
            policy=policy,
            surface=TIPS,
            principal=person,
            event_id=event_id,
            context=context,
            actions=candidates.actions,
            action_lines=candidates.lines,
            activate=not (body and body.defer_activation),
            experiment=experiment,
            arm=arm,
            missing_sources=gathered.missing,
        )
        decision = outcome.decision
        if not outcome.replayed:
            services.history.shown(person, event_id, decision.created_at, decision.chosen.id)
        return RecommendResponse(
            event_id=decision.event_id,
            tip=_shown(services, decision.chosen.id, live.tasks, now, profile.zone),
            probability=decision.propensity,
            policy=decision.policy,
            model_version=decision.model_version,
            missing_sources=list(decision.missing_sources),
        )


def _shown(
    services: Services, action_id: str, tasks: Mapping[str, Task], now: datetime, tz: tzinfo
) -> TipPublic:
    """The chosen action as the page shows it; a todo's title comes from the fetched task."""
    task = tasks.get(action_id)
    if task is not None:
        return TipPublic(
            id=action_id,
            kind="todo",
            title=task.title or "A task from Todoist",
            body=todo_note(task, now, tz),
            category="todoist",
            effort_minutes=task.duration_minutes or 0,
        )
    tip = services.tips.tip(action_id)
    if tip is None:  # pragma: no cover - candidates come from the catalog or the tasks
        raise Conflict(f"tip {action_id!r} left the catalog")
    return TipPublic(
        id=tip.id,
        kind=tip.kind,
        title=tip.title,
        body=tip.body,
        category=tip.category,
        effort_minutes=tip.effort_minutes,
    )


@router.get("/decisions/{event_id}", response_model=RecommendResponse)
def decision(
    logged: PersonDecisionDep, services: ServicesDep, person: PersonDep
) -> RecommendResponse:
    """One of this person's tips by event id, as it was chosen (a pushed tip opens on it).

    Nothing is decided or logged. A todo's title is fetched from Todoist again (task data is
    never stored); a task that is no longer open comes back with a generic title.
    """
    decision = logged.decision
    chosen = decision.chosen.id
    now = utcnow()
    zone = services.people.profile(person).zone
    if services.tips.tip(chosen) is not None:
        tip = _shown(services, chosen, {}, now, zone)
    else:
        gathered = services.integrations.gather(person, now, zone, todos=True)
        tasks = {action_id(task): task for task in gathered.tasks}
        tip = _shown(services, chosen, tasks, now, zone) if chosen in tasks else _closed(chosen)
    return RecommendResponse(
        event_id=decision.event_id,
        tip=tip,
        probability=decision.propensity,
        policy=decision.policy,
        model_version=decision.model_version,
        missing_sources=list(decision.missing_sources),
    )


def _closed(action_id: str) -> TipPublic:
    """A todo whose task Todoist no longer lists as open (done, deleted, or unreachable)."""
    return TipPublic(
        id=action_id,
        kind="todo",
        title="A task from Todoist",
        body="No longer open in Todoist · from Todoist",
        category="todoist",
        effort_minutes=0,
    )


@router.post("/decisions/{event_id}/activate", status_code=204)
def activate(logged: PersonDecisionDep, services: ServicesDep) -> Response:
    """The prefetched tip is now on screen: its reward window starts."""
    if services.store.activate(logged.decision.event_id):
        services.publish("activate", logged.decision.event_id)
    return Response(status_code=204)


@router.post("/feedback", response_model=FeedbackResponse)
def feedback(body: FeedbackRequest, services: ServicesDep, person: PersonDep) -> FeedbackResponse:
    """A reaction to a tip, as a reward. Idempotent per event id: the first reaction counts."""
    owned_decision(services, body.event_id, person, TIPS)
    reward = services.rewards.reward(body.reaction)
    outcome = services.store.record_reward(
        body.event_id,
        reward,
        reaction=body.reaction,
        window=services.learner_settings.reward_window,
    )
    if outcome is None:  # pragma: no cover - checked above; decisions are never deleted here
        raise Conflict(f"decision {body.event_id!r} vanished")
    if outcome.created:
        services.history.reacted(person, body.event_id, body.reaction)
        REWARDS.labels(TIPS, body.reaction, str(outcome.late).lower()).inc()
        if not outcome.late:
            services.publish("reward", body.event_id)
    return FeedbackResponse(
        event_id=body.event_id,
        reaction=outcome.reaction,
        reward=outcome.value,
        duplicate=not outcome.created,
        late=outcome.late,
    )


@router.post(
    "/signals",
    response_model=SignalIn,
    status_code=202,
    dependencies=[Depends(limited(Bucket.SIGNALS))],
)
def add_signal(body: SignalIn, services: ServicesDep, person: PersonDep) -> SignalIn:
    """A normalized signal (mood, energy, habit_done, `<namespace>.<name>`): docs/signals.md."""
    return services.signals.ingest(person, body).signal
