"""The policy registry: register a policy spec (validated), list and read them.

Role checks (experimenter) come with sign-in (issue 4); until then these routes serve the local
single-user mode like every other route.
"""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import ServicesDep
from api.errors import BadRequest, Conflict, NotFound
from api.schemas import PolicyCreate, PolicyPublic
from api.services import PolicyExists, Services
from policies.registry import BUILTIN
from policies.spec import PolicySpec, PolicySpecError

router = APIRouter(prefix="/v1/policies", tags=["experiments"])

_BUILTIN = {spec.name for spec in BUILTIN}


def public(spec: PolicySpec) -> PolicyPublic:
    return PolicyPublic(
        name=spec.name,
        kind=spec.kind,
        args=spec.args,
        description=spec.description,
        builtin=spec.name in _BUILTIN,
    )


def register(services: Services, body: PolicyCreate) -> PolicySpec:
    """Validate and register; bad VW arguments are a 400 whose target is the VW option."""
    try:
        spec = PolicySpec(body.name, body.kind, body.args, body.description)
        return services.register_policy(spec)
    except PolicyExists as exc:
        raise Conflict(str(exc), target="name") from None
    except PolicySpecError as exc:
        raise BadRequest(str(exc), target=exc.target) from None


@router.post("", response_model=PolicyPublic, status_code=201)
def create_policy(body: PolicyCreate, services: ServicesDep) -> PolicyPublic:
    """Register a policy spec. VW specs are built and probed first: bad arguments get a 400."""
    return public(register(services, body))


@router.get("", response_model=list[PolicyPublic])
def list_policies(services: ServicesDep) -> list[PolicyPublic]:
    """Built-in and registered policies."""
    for spec in services.policies.all():  # registrations of other processes join the registry
        services.registry.find(spec.name)
    return [public(spec) for spec in services.registry]


@router.get("/{name}", response_model=PolicyPublic)
def read_policy(name: str, services: ServicesDep) -> PolicyPublic:
    spec = services.registry.find(name)
    if spec is None:
        raise NotFound(f"no policy is called {name!r}", target="name")
    return public(spec)
