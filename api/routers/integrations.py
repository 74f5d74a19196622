"""People's integrations: connect Todoist and Google Calendar through OAuth, see, disconnect."""

from __future__ import annotations

import logging
import re
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import RedirectResponse
from pydantic import StringConstraints

from api.deps import PersonDep, ServicesDep
from api.errors import BadRequest
from api.schemas.base import NoNul
from api.schemas.integrations import IntegrationList, IntegrationProvider, IntegrationPublic

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/integrations", tags=["integrations"])

ProviderPath = Annotated[IntegrationProvider, Path(description="todoist or google-calendar")]
OAuthParam = Annotated[str, StringConstraints(min_length=1, max_length=2048), NoNul]
_ERROR_CODE = re.compile(r"[a-z_]{1,64}")


def _connect_url(provider: str) -> str:
    return f"{router.prefix}/{provider}/connect"


@router.get("", response_model=IntegrationList)
def list_integrations(services: ServicesDep, person: PersonDep) -> IntegrationList:
    """Each provider with this person's status: connected, needs_reconnect or not_connected."""
    return IntegrationList(
        integrations=[
            IntegrationPublic(
                provider=status.provider,
                status=status.status,
                configured=status.configured,
                connected_at=status.connected_at,
                changed_at=status.changed_at,
                connect_url=_connect_url(status.provider),
            )
            for status in services.integrations.statuses(person)
        ]
    )


@router.get(
    "/{provider}/connect",
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "To the provider's consent page"}},
)
def connect(provider: ProviderPath, services: ServicesDep, person: PersonDep) -> RedirectResponse:
    """Start connecting: a redirect to the provider, with a single-use state for this person."""
    url = services.integrations.connect_url(person, provider)
    return RedirectResponse(url, status_code=302, headers={"Cache-Control": "no-store"})


@router.get(
    "/{provider}/callback",
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "Connected: back to the tip page"}},
)
def callback(
    provider: ProviderPath,
    services: ServicesDep,
    person: PersonDep,
    state: Annotated[OAuthParam, Query()],
    code: Annotated[OAuthParam | None, Query()] = None,
    error: Annotated[OAuthParam | None, Query()] = None,
) -> RedirectResponse:
    """The provider sends the person back here; the token goes to the vault."""
    integrations = services.integrations
    if error is not None or code is None:
        # Declined (or a broken provider): spend the state so it cannot be used later.
        integrations.states.consume(state, person, provider)
        reason = error if error and _ERROR_CODE.fullmatch(error) else "no code"
        raise BadRequest(f"{provider} did not authorize the connection ({reason})", target="code")
    integrations.complete(person, provider, code=code, state=state)
    return RedirectResponse("/", status_code=302, headers={"Cache-Control": "no-store"})


@router.delete("/{provider}", status_code=204)
def disconnect(provider: ProviderPath, services: ServicesDep, person: PersonDep) -> Response:
    """Revoke the token at the provider and delete it; nothing of it stays."""
    services.integrations.disconnect(person, provider)
    return Response(status_code=204)
