"""The policy registry as the API and the analysis page see it: register, list, describe."""

from __future__ import annotations

from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from api.schemas.policies import PolicyCreate, PolicyPublic
from api.services.process import Services
from policies.registry import BUILTIN, Registry
from policies.spec import PolicySpec, StoredSpec
from policies.store import PolicyStore

_BUILTIN = set(BUILTIN)


def public(spec: PolicySpec) -> PolicyPublic:
    return PolicyPublic(
        name=spec.name,
        kind=spec.kind,
        args=spec.args,
        description=spec.description,
        version=spec.version,
        id=spec.id,
        builtin=spec in _BUILTIN,
    )


def register(services: Services, body: PolicyCreate) -> tuple[PolicySpec, bool]:
    """Validate and register; True when a version was created (see `Services.register_policy`).

    Bad VW arguments are a `PolicySpecError` whose target is the VW option.
    """
    spec = PolicySpec(body.name, body.kind, body.args, body.description)
    return services.register_policy(spec)


def registered(services: Services) -> Registry:
    """The registry, with the versions other processes registered since this one started."""
    for spec in services.policies.all():
        services.registry.add(spec)
    return services.registry


def latest(services: Services) -> list[PolicySpec]:
    """Built-in and registered policies, each at its latest version."""
    newest: dict[str, PolicySpec] = {}
    for spec in registered(services):
        if spec.name not in newest or spec.version > newest[spec.name].version:
            newest[spec.name] = spec
    return list(newest.values())


def offline_registry(engine: Engine) -> Registry:
    """The registry of the policies a database holds, for commands that read a log offline
    (`oo evaluate`, `oo doctor`); only the built-ins when it has no policy table (an exported
    copy of the decision log)."""
    policies = PolicyStore(engine)

    def find(name: str) -> StoredSpec | None:
        try:
            return policies.get(name)
        except DBAPIError:
            return None

    return Registry(loader=find)
