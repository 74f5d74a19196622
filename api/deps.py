"""Typed dependencies: route signatures read like sentences."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Header, Path, Request

from api.errors import Forbidden, NotFound, Unauthorized
from api.schemas import NoNul
from api.services import PERSONALIZER, TIPS, Services
from bandit.store import LoggedDecision

LOCAL_PERSON = "local"


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def current_person(services: ServicesDep) -> str:
    """Local single-user mode: the one person using this machine."""
    return LOCAL_PERSON


PersonDep = Annotated[str, Depends(current_person)]


def current_integrator(
    services: ServicesDep,
    key: Annotated[str | None, Header(alias="Ocp-Apim-Subscription-Key")] = None,
) -> str:
    expected = services.settings.personalizer_key
    if expected is not None and (
        key is None or not hmac.compare_digest(key.encode(), expected.encode())
    ):
        raise Unauthorized(
            "the `Ocp-Apim-Subscription-Key` header is missing or not valid",
            target="Ocp-Apim-Subscription-Key",
        )
    return PERSONALIZER


IntegratorDep = Annotated[str, Depends(current_integrator)]


def owned_decision(
    services: Services, event_id: str, principal: str, surface: str
) -> LoggedDecision:
    logged = services.store.get(event_id)
    if logged is None:
        raise NotFound(f"no decision has event id {event_id!r}", target="event_id")
    decision = logged.decision
    if decision.principal != principal or decision.surface != surface:
        raise Forbidden(f"decision {event_id!r} belongs to someone else", target="event_id")
    return logged


PathEventId = Annotated[str, Path(min_length=1, max_length=256), NoNul]


def person_decision(
    event_id: PathEventId, services: ServicesDep, person: PersonDep
) -> LoggedDecision:
    return owned_decision(services, event_id, person, TIPS)


def integrator_decision(
    event_id: PathEventId, services: ServicesDep, integrator: IntegratorDep
) -> LoggedDecision:
    return owned_decision(services, event_id, integrator, PERSONALIZER)


PersonDecisionDep = Annotated[LoggedDecision, Depends(person_decision)]
IntegratorDecisionDep = Annotated[LoggedDecision, Depends(integrator_decision)]
