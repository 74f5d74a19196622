"""The tips product: one tip, a reaction, signals and the profile."""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

from fastapi import APIRouter, Response, status

from api.deps import PersonDecisionDep, PersonDep, ServicesDep, owned_decision
from api.errors import Conflict
from api.schemas import (
    FeedbackRequest,
    FeedbackResponse,
    ProfilePublic,
    ProfileUpdate,
    QuietHours,
    RecommendRequest,
    RecommendResponse,
    SignalAccepted,
    SignalIn,
    TipPublic,
)
from api.services import TIPS
from bandit.events import utcnow
from bandit.metrics import RECOMMEND_LATENCY, REWARDS
from integrations.context import SIGNAL_FRESHNESS, build_context
from integrations.profiles import ALL_KINDS, Profile, Signal

router = APIRouter(prefix="/v1", tags=["tips"])


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
        profile, signals, recent = services.people.moment(
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
        event_id = uuid.uuid4().hex
        candidates = services.tips.candidates(profile, local, recent, event_id)
        policy, experiment, arm = services.policy_for(TIPS, person)
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
        )
        decision = outcome.decision
        tip = services.tips.tip(decision.chosen.id)
        if tip is None:  # pragma: no cover - candidates come from the catalog
            raise Conflict(f"tip {decision.chosen.id!r} left the catalog")
        return RecommendResponse(
            event_id=decision.event_id,
            tip=TipPublic(
                id=tip.id,
                kind=tip.kind,
                title=tip.title,
                body=tip.body,
                category=tip.category,
                effort_minutes=tip.effort_minutes,
            ),
            probability=decision.propensity,
            policy=decision.policy,
            model_version=decision.model_version,
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


@router.post("/signals", response_model=SignalAccepted, status_code=202)
def add_signal(body: SignalIn, services: ServicesDep, person: PersonDep) -> SignalAccepted:
    """A normalized signal (mood, energy, habit_done, custom types) for the context builder."""
    occurred_at = body.occurred_at or utcnow()
    services.people.add_signal(person, Signal(body.type, body.value, occurred_at, body.source))
    return SignalAccepted(type=body.type, value=body.value, occurred_at=occurred_at)


def _public(profile: Profile) -> ProfilePublic:
    quiet = (
        QuietHours(start=profile.quiet_start, end=profile.quiet_end)
        if profile.quiet_start and profile.quiet_end
        else None
    )
    return ProfilePublic(
        timezone=profile.timezone,
        quiet_hours=quiet,
        interests=list(profile.interests),
        kinds=[k for k in profile.kinds if k in ALL_KINDS],
    )


@router.get("/me", response_model=ProfilePublic)
def read_me(services: ServicesDep, person: PersonDep) -> ProfilePublic:
    return _public(services.people.profile(person))


@router.patch("/me", response_model=ProfilePublic)
def update_me(body: ProfileUpdate, services: ServicesDep, person: PersonDep) -> ProfilePublic:
    """Change timezone, quiet hours (null removes them), interests or wanted tip kinds."""
    current = services.people.profile(person)
    fields = body.model_fields_set
    quiet_start, quiet_end = current.quiet_start, current.quiet_end
    if "quiet_hours" in fields:
        quiet_start = body.quiet_hours.start if body.quiet_hours else None
        quiet_end = body.quiet_hours.end if body.quiet_hours else None
    updated = Profile(
        principal=person,
        timezone=body.timezone or current.timezone,
        quiet_start=quiet_start,
        quiet_end=quiet_end,
        interests=tuple(body.interests) if body.interests is not None else current.interests,
        kinds=tuple(body.kinds) if body.kinds is not None else current.kinds,
    )
    services.people.save_profile(updated)
    return _public(updated)
