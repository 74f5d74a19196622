"""The tips product: one tip, a reaction, and the signals that shape the next one."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime, tzinfo

from fastapi import APIRouter, Depends, Request, Response, status
from starlette.concurrency import run_in_threadpool

from api.deps import (
    PersonDecisionDep,
    PersonDep,
    PersonEventDep,
    ServicesDep,
    current_person,
    current_principal,
    get_services,
    no_decision,
)
from api.direct import DirectRoute, json_body, served_by, validated_optional
from api.ratelimit import Bucket, limited, spend
from api.schemas.base import model_response
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
from integrations.connections import Gathered
from integrations.tip_decisions import Moment, Quiet, ShownTip
from integrations.todoist import Task, action_id

# Recommend is served by a hand-written handler (ADR 0018); the other routes by FastAPI.
router = APIRouter(prefix="/v1", tags=["tips"], route_class=DirectRoute)


async def _serve_recommend(request: Request) -> Response:
    """`recommend` without FastAPI's generic machinery (ADR 0018), in its order: the body is
    decoded, the caller authenticated, the rate limit spent (the tips router's dependency), the
    caller required to be a person, the body validated."""
    payload = await json_body(request)
    services = await get_services(request)
    principal = await current_principal(request, services)
    await spend(request, Bucket.DEFAULT, principal)
    person = await current_person(principal)
    return await recommend(services, person, validated_optional(RecommendRequest, payload))


@router.post(
    "/recommend",
    response_model=RecommendResponse,
    responses={204: {"description": "Quiet hours: `X-Next-Tip-At` says when the next tip is due"}},
)
@served_by(
    _serve_recommend,
    performs=(get_services, current_principal, limited(Bucket.DEFAULT), current_person),
)
async def recommend(
    services: ServicesDep, person: PersonDep, body: RecommendRequest | None = None
) -> Response:
    """One tip for this person, now. The decision is logged before the answer leaves."""
    # The person's reads run without a worker thread of their own, the live sources on one
    # (ADR 0020); the decision runs on the event loop and awaits its commit (ADR 0016).
    with RECOMMEND_LATENCY.time():
        now = utcnow()
        read = await _read(services, person, now)
        if isinstance(read, Quiet):
            wait = max(1, math.ceil((read.until - now).total_seconds()))
            return Response(
                status_code=status.HTTP_204_NO_CONTENT,
                headers={"Retry-After": str(wait), "X-Next-Tip-At": read.until.isoformat()},
            )
        moment, gathered, waiting = read
        prepared = services.tip_decisions.assemble(
            moment,
            gathered,
            activate=not (body and body.defer_activation),
            event_id=services.event_ids(),
        )
        made = await services.tip_decisions.decide_prepared(prepared)
        if waiting and not made.replayed:
            # The person came on their own: a "wait" of the timing surface just paid off.
            await run_in_threadpool(services.timing.visited, person, now)
        decision = made.decision
        answer = RecommendResponse(
            event_id=decision.event_id,
            tip=_public(made.tip),
            probability=decision.propensity,
            policy=decision.policy,
            model_version=decision.model_version,
            missing_sources=list(decision.missing_sources),
        )
        return model_response(answer)


Read = tuple[Moment, Gathered, bool] | Quiet
"""What recommend reads before deciding: the person's moment, the live sources, and whether a
visit now rewards a wait of the timing surface (or Quiet, and nothing else read)."""


async def _read(services: Services, person: str, now: datetime) -> Read:
    """`recommend`'s reads, without a worker thread of their own while they stay small
    (`TipDecisions.reads_quickly`, ADR 0020). On SQLite they are a few indexed lookups in a
    local file, cheaper than the hop to a thread and its GIL hand-offs under load: they run on
    the event loop. On PostgreSQL they join the batch one thread reads in one round trip
    (`RecommendReads`). Only asking a connected provider takes a thread then. A history to
    load from the log takes one trip to a thread for everything."""
    decisions = services.tip_decisions
    if not decisions.reads_quickly(person, now):
        return await run_in_threadpool(_read_blocking, services, person, now)
    if services.recommend_reads is not None:
        moment, waiting = await services.recommend_reads.read(person, now)
        if isinstance(moment, Quiet):
            return moment
    else:
        moment = decisions.read(person, now)
        if isinstance(moment, Quiet):
            return moment
        waiting = services.timing.waiting(person, now)
    if decisions.fetches(moment):
        return moment, await run_in_threadpool(decisions.gather, moment), waiting
    return moment, decisions.gather(moment), waiting  # nothing to ask: answers at once


def _read_blocking(services: Services, person: str, now: datetime) -> Read:
    moment = services.tip_decisions.read(person, now)
    if isinstance(moment, Quiet):
        return moment
    waiting = services.timing.waiting(person, now)
    return moment, services.tip_decisions.gather(moment), waiting


def _public(tip: ShownTip) -> TipPublic:
    return TipPublic(
        id=tip.id,
        kind=tip.kind,
        title=tip.title,
        body=tip.body,
        category=tip.category,
        effort_minutes=tip.effort_minutes,
    )


def _shown(
    services: Services, action_id: str, tasks: Mapping[str, Task], now: datetime, tz: tzinfo
) -> TipPublic:
    return _public(services.tip_decisions.shown(action_id, tasks, now, tz))


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
def activate(event_id: PersonEventDep, services: ServicesDep) -> Response:
    """The prefetched tip is now on screen: its reward window starts."""
    if services.store.activate(event_id):
        services.publish("activate", event_id)
    return Response(status_code=204)


@router.post("/feedback", response_model=FeedbackResponse)
async def feedback(
    body: FeedbackRequest, services: ServicesDep, person: PersonDep
) -> FeedbackResponse:
    """A reaction to a tip, as a reward. Idempotent per event id: the first reaction counts."""
    # One statement checks that the tip is this person's and records the reward, and the
    # event loop awaits its group commit: no worker thread (ADR 0021).
    outcome = await services.store.record_reward_async(
        body.event_id,
        services.rewards.reward(body.reaction),
        reaction=body.reaction,
        window=services.learner_settings.reward_window,
        owner=(person, TIPS),
    )
    if outcome is None:
        raise no_decision(body.event_id)
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
