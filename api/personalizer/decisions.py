"""Personalizer's decisions: rank, reward and activate, under both path styles."""

from __future__ import annotations

from fastapi import Request, Response

from api.deps import (
    IntegratorDep,
    IntegratorEventDep,
    PathEventId,
    ServicesDep,
    current_integrator,
    get_services,
    no_decision,
)
from api.direct import DirectRoute, json_body, served_by, validated
from api.personalizer.routing import PathStyles
from api.personalizer.schemas import RankRequest, RankResponse, RewardRequest
from api.ratelimit import Bucket, limited, spend
from api.schemas.base import model_response
from api.services.surfaces import PERSONALIZER
from bandit.events import Action, Decision
from bandit.features import action_lines
from bandit.metrics import RANK_LATENCY, REWARDS

router = PathStyles(tags=["personalizer"], route_class=DirectRoute)


def _ranking(decision: Decision) -> RankResponse:
    # Plain dicts, validated by pydantic's core in one call: a third cheaper than building a
    # `RankedAction` per action in Python.
    pmf, actions = decision.pmf, decision.actions
    order = sorted(range(len(actions)), key=lambda i: (-pmf[i], i))
    ranking = [{"id": actions[i].id, "probability": pmf[i]} for i in order]
    ranking += [{"id": action_id, "probability": 0.0} for action_id in decision.excluded]
    return RankResponse.model_validate(
        {"eventId": decision.event_id, "rewardActionId": decision.chosen.id, "ranking": ranking}
    )


async def _serve_rank(request: Request) -> Response:
    """`rank` without FastAPI's generic machinery (ADR 0018), in its order: the body is decoded,
    the key authenticated, the rate limit spent (the Personalizer routers' dependency), the body
    validated."""
    payload = await json_body(request)
    services = await get_services(request)
    integrator = await current_integrator(request, services)
    await spend(request, Bucket.PERSONALIZER, request.state.principal)
    return await rank(validated(RankRequest, payload), services, integrator)


@router.post("/rank", summary="Rank", status_code=201, response_model=RankResponse)
@served_by(_serve_rank, performs=(get_services, current_integrator, limited(Bucket.PERSONALIZER)))
async def rank(body: RankRequest, services: ServicesDep, integrator: IntegratorDep) -> Response:
    """Choose one action. The first action that is not excluded is the baseline.

    Runs on the event loop (ADR 0016): choosing is CPU work on in-memory state, and the
    decision's commit is awaited without holding a worker thread.
    """
    with RANK_LATENCY.time():
        excluded = set(body.excluded_actions or [])
        actions = [Action(a.id, a.features) for a in body.actions if a.id not in excluded]
        event_id = body.event_id or services.event_ids()
        # The unit of assignment is the event: one subscription key is one principal.
        # The service configuration's learning mode and exploration (administration surface).
        policy, experiment, arm = services.serving_policy(PERSONALIZER, event_id)
        outcome = await services.decider.decide_async(
            policy=policy,
            surface=PERSONALIZER,
            principal=integrator,
            event_id=event_id,
            context=body.context_features or [],
            actions=actions,
            action_lines=action_lines(actions),
            activate=not body.defer_activation,
            excluded=[a.id for a in body.actions if a.id in excluded],
            experiment=experiment,
            arm=arm,
        )
        return model_response(_ranking(outcome.decision), status_code=201)


@router.post("/events/{event_id}/reward", summary="Reward", status_code=204)
async def reward(
    body: RewardRequest, event_id: PathEventId, services: ServicesDep, integrator: IntegratorDep
) -> Response:
    """Report the reward of an event's chosen action, in [-1, 1]. The first reward counts."""
    # One statement checks that the event is this integrator's and records the reward; the
    # event loop awaits its group commit (ADR 0021).
    config = services.surface_configs.get(PERSONALIZER)
    outcome = await services.store.record_reward_async(
        event_id,
        body.value,
        reaction=None,
        window=config.reward_wait,
        aggregation=config.reward_aggregation,
        owner=(integrator, PERSONALIZER),
    )
    if outcome is None:
        raise no_decision(event_id)
    if outcome.created:
        REWARDS.labels(PERSONALIZER, "value", str(outcome.late).lower()).inc()
        if not outcome.late:
            services.publish("reward", event_id)
    return Response(status_code=204)


@router.post("/events/{event_id}/activate", summary="Activate", status_code=204)
def activate(event_id: IntegratorEventDep, services: ServicesDep) -> Response:
    """The chosen action of a deferred event was shown: a reward is now expected."""
    if services.store.activate(event_id):
        services.publish("activate", event_id)
    return Response(status_code=204)
