"""The policy registry: register a policy spec version (validated), list and read them.

Registering a name again with another kind or arguments creates its next version (201); the same
kind and arguments again return the version that has them (200). Reading a name gives its latest
version and its history; `/versions/{n}` reads one version.

The operations are `api.services.policies`.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Response, status

from api.auth.principal import Role
from api.deps import ServicesDep, requires
from api.errors import NotFound
from api.schemas.policies import PolicyCreate, PolicyHistory, PolicyPublic
from api.services.policies import latest, public, register

router = APIRouter(
    prefix="/v1/policies",
    tags=["experiments"],
    dependencies=[Depends(requires(Role.EXPERIMENTER, Role.ANALYST))],
)


@router.post(
    "",
    response_model=PolicyPublic,
    status_code=status.HTTP_201_CREATED,
    responses={
        status.HTTP_200_OK: {
            "model": PolicyPublic,
            "description": "A version with the same kind and arguments exists: that version",
        }
    },
)
def create_policy(body: PolicyCreate, services: ServicesDep, response: Response) -> PolicyPublic:
    """Register a policy spec: its name's next version, or 200 with the version of equal args.

    VW specs are built and probed first: bad arguments get a 400.
    """
    spec, created = register(services, body)
    if not created:
        response.status_code = status.HTTP_200_OK
    return public(spec)


@router.get("", response_model=list[PolicyPublic])
def list_policies(services: ServicesDep) -> list[PolicyPublic]:
    """Built-in and registered policies, each at its latest version."""
    return [public(spec) for spec in latest(services)]


@router.get("/{name}", response_model=PolicyHistory)
def read_policy(name: str, services: ServicesDep) -> PolicyHistory:
    """The latest version of `name` and all its versions."""
    versions = services.registry.versions(name)
    if not versions:
        raise NotFound(f"no policy is called {name!r}", target="name")
    return PolicyHistory(
        **public(versions[-1]).model_dump(), versions=[public(spec) for spec in versions]
    )


@router.get("/{name}/versions/{version}", response_model=PolicyPublic)
def read_policy_version(
    name: str, version: Annotated[int, Path(ge=1)], services: ServicesDep
) -> PolicyPublic:
    spec = next((s for s in services.registry.versions(name) if s.version == version), None)
    if spec is None:
        raise NotFound(f"policy {name!r} has no version {version}", target="version")
    return public(spec)
