"""The person: their profile, and their data (export and erasure)."""

from __future__ import annotations

from fastapi import APIRouter, Response

from api.auth.signin import SignInAuthenticator
from api.deps import PersonDep, ServicesDep
from api.schemas.me import (
    ExportSectionPublic,
    PersonExport,
    ProfilePublic,
    ProfileUpdate,
    QuietHours,
)
from bandit.events import utcnow
from integrations.profiles import ALL_KINDS, Profile

router = APIRouter(prefix="/v1", tags=["me"])


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


@router.get("/me/export", response_model=PersonExport)
def export_me(services: ServicesDep, person: PersonDep, response: Response) -> PersonExport:
    """Everything held about you, one section per module that holds it; never a token."""
    response.headers["Content-Disposition"] = 'attachment; filename="oo-export.json"'
    return PersonExport(
        principal=person,
        exported_at=utcnow(),
        sections=[
            ExportSectionPublic(name=section.name, description=section.description, data=data)
            for section, data in services.personal_data.export(person)
        ],
    )


@router.delete("/me", status_code=204)
def erase_me(services: ServicesDep, person: PersonDep) -> Response:
    """Erase you: tokens, signals and profile are deleted, decisions anonymized. Idempotent."""
    services.personal_data.erase(person)
    response = Response(status_code=204)
    if isinstance(services.auth, SignInAuthenticator):
        services.auth.forget(person)  # the cached account must not outlive the erasure
        services.auth.end_session(response)  # the session went with the account
    return response
