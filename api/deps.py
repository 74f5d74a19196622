"""Typed dependencies: route signatures read like sentences.

Every route names its principal: `PersonDep` (a person, for their own decisions and profile),
`ExperimenterDep`, `AnalystDep`, `AdminDep` (roles), or `IntegratorDep` (a Personalizer
subscription key). The principal is also left on `request.state.principal` for rate limits and
access logs. Lookups validate (`ExperimentDep`, `PersonDecisionDep`), and what several routes
share of a process (`ServicesDep`, the job registries) is reached here, never through another
route module.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from api.auth.principal import KEY_HEADER, NeedsLookup, Principal, Role
from api.errors import Forbidden, NotFound, Unauthorized
from api.job_runner import JobRunner
from api.schemas.base import NoNul
from api.services.evaluations import Jobs
from api.services.policy_searches import Searches
from api.services.process import Services
from api.services.surfaces import PERSONALIZER, TIPS
from bandit.store import LoggedDecision
from experiments.lifecycle import Experiment


async def get_services(request: Request) -> Services:
    # async: an attribute read needs no worker thread (sync dependencies each take a hop).
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_job_runner(services: ServicesDep) -> JobRunner:
    """The process's background-job runner (evaluations, searches, Personalizer jobs)."""
    return services.runner


JobRunnerDep = Annotated[JobRunner, Depends(get_job_runner)]


async def current_principal(request: Request, services: ServicesDep) -> Principal:
    # Async, like the checks built on it: credentials the process holds in memory (a cached key
    # or person, a verified token) cost no worker-thread hop; only a database lookup takes one.
    try:
        principal = services.auth.authenticate(request, memory_only=True)
    except NeedsLookup:
        principal = await run_in_threadpool(services.auth.authenticate, request)
    if principal is None:
        raise Unauthorized(
            "sign in first: send the session cookie, an `Authorization: Bearer` access token, "
            "or an API key (`Authorization: Bearer oo_…`)",
            target="Authorization",
        )
    request.state.principal = principal
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]


NOT_A_PERSON = (
    "this endpoint is for people: it acts on one person's own tips, feedback, signals, profile "
    "or integrations, and an API key speaks for a script, not a person, whatever its roles; "
    "send a person's access token (`POST /v1/auth/token`) or their session instead"
)


async def current_person(principal: PrincipalDep) -> str:
    """The person the request speaks for; API keys are not people (ADR 0008)."""
    if not principal.is_person:
        raise Forbidden(NOT_A_PERSON)
    return principal.id


PersonDep = Annotated[str, Depends(current_person)]


def requires(*roles: Role) -> Callable[[Principal], Awaitable[Principal]]:
    """A principal holding at least one of `roles` (admin holds them all)."""
    needed = " or ".join(f"`{role}`" for role in roles)

    async def check(principal: PrincipalDep) -> Principal:
        if not any(principal.has(role) for role in roles):
            if principal.kind == "key":
                raise Forbidden(
                    f"this endpoint needs the {needed} role, which this API key does not carry "
                    "(an admin creates one that does: `oo keys create --role …`)"
                )
            raise Forbidden(f"this endpoint needs the {needed} role")
        return principal

    check.__name__ = "requires_" + "_or_".join(roles)
    return check


ExperimenterDep = Annotated[Principal, Depends(requires(Role.EXPERIMENTER))]
AnalystDep = Annotated[Principal, Depends(requires(Role.ANALYST))]
AdminDep = Annotated[Principal, Depends(requires(Role.ADMIN))]


async def current_integrator(request: Request, services: ServicesDep) -> str:
    """A Personalizer client; every key shares the one Personalizer loop of this service.

    The key is read from the headers here rather than declared as a `Header` parameter: FastAPI
    spent about 45 µs a request resolving that parameter, a twentieth of a rank. The OpenAPI
    document still lists it on every Personalizer operation (`document_key_header`).
    """
    key = request.headers.get(KEY_HEADER)
    try:
        principal = services.auth.authenticate_key(key, memory_only=True)
    except NeedsLookup:
        principal = await run_in_threadpool(services.auth.authenticate_key, key)
    if principal is None:
        raise Unauthorized(f"the `{KEY_HEADER}` header is missing or not valid", target=KEY_HEADER)
    request.state.principal = principal
    return PERSONALIZER


IntegratorDep = Annotated[str, Depends(current_integrator)]


async def integrator_admin(request: Request, services: ServicesDep) -> Principal:
    """The Personalizer administration surface: a key with the admin role."""
    await current_integrator(request, services)
    principal: Principal = request.state.principal
    if not principal.has(Role.ADMIN):
        raise Forbidden("this key cannot administer the service; it needs the `admin` role")
    return principal


IntegratorAdminDep = Annotated[Principal, Depends(integrator_admin)]

KEY_PARAMETER = {
    "in": "header",
    "name": KEY_HEADER,
    "required": False,
    "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": KEY_HEADER},
}


def document_key_header(schema: dict[str, Any], prefix: str = "/personalizer") -> dict[str, Any]:
    """List the subscription key header (`current_integrator` reads it) on every operation
    under `prefix`, last, as FastAPI listed it when it was a declared parameter."""
    for path, operations in schema.get("paths", {}).items():
        if path.startswith(prefix):
            for operation in operations.values():
                parameters = operation.setdefault("parameters", [])
                if all(p.get("name") != KEY_HEADER for p in parameters):
                    parameters.append(dict(KEY_PARAMETER))
    return schema


def owned_decision(
    services: Services, event_id: str, principal: str, surface: str
) -> LoggedDecision:
    """The decision, when it is this principal's on this surface.

    Someone else's decision answers exactly like a missing one: a caller cannot learn whether
    an event id exists elsewhere.
    """
    logged = services.store.get(event_id)
    if logged is None or (
        logged.decision.principal != principal or logged.decision.surface != surface
    ):
        raise no_decision(event_id)
    return logged


def owned_event(services: Services, event_id: str, principal: str, surface: str) -> str:
    """`event_id`, when its decision is this principal's on this surface: `owned_decision`
    for the routes that act on an event id without reading its decision (activations), from
    the decision's owner alone (`Store.owner`)."""
    if services.store.owner(event_id) != (principal, surface):
        raise no_decision(event_id)
    return event_id


def no_decision(event_id: str) -> NotFound:
    """What a missing decision and someone else's both answer."""
    return NotFound(f"no decision has event id {event_id!r}", target="event_id")


PathEventId = Annotated[str, Path(min_length=1, max_length=256), NoNul]


def person_decision(
    event_id: PathEventId, services: ServicesDep, person: PersonDep
) -> LoggedDecision:
    return owned_decision(services, event_id, person, TIPS)


def person_event(event_id: PathEventId, services: ServicesDep, person: PersonDep) -> str:
    return owned_event(services, event_id, person, TIPS)


def integrator_event(
    event_id: PathEventId, services: ServicesDep, integrator: IntegratorDep
) -> str:
    return owned_event(services, event_id, integrator, PERSONALIZER)


PersonDecisionDep = Annotated[LoggedDecision, Depends(person_decision)]
PersonEventDep = Annotated[str, Depends(person_event)]
"""The path's event id, of one of this person's tips (404 otherwise, as for a missing one)."""
IntegratorEventDep = Annotated[str, Depends(integrator_event)]
"""The path's event id, of one of this integrator's decisions (404 otherwise)."""


def valid_experiment(experiment_id: str, services: ServicesDep) -> Experiment:
    """The experiment called `experiment_id` (`ExperimentNotFound`, a 404, otherwise)."""
    return services.experiments.get(experiment_id)


ExperimentDep = Annotated[Experiment, Depends(valid_experiment)]


def get_jobs(runner: JobRunnerDep) -> Jobs:
    """The evaluation jobs, as the process's job runner holds them."""
    return Jobs(runner)


JobsDep = Annotated[Jobs, Depends(get_jobs)]


def get_searches(runner: JobRunnerDep) -> Searches:
    """The policy searches, as the process's job runner holds them."""
    return Searches(runner)


SearchesDep = Annotated[Searches, Depends(get_searches)]
