"""The person: their profile, and their data (export and erasure)."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter, Response

from api.auth.signin import SignInAuthenticator
from api.deps import PersonDep, ServicesDep
from api.schemas.me import ExportSectionPublic, PersonExport, QuietHours
from api.schemas.timing import MePublic, MeUpdate, TimingPublic
from api.services.process import Services
from bandit.events import utcnow
from integrations.profiles import ALL_KINDS, Profile
from notifier.schedule import TimingSettings

router = APIRouter(prefix="/v1", tags=["me"])


def _public(profile: Profile, timing: TimingSettings) -> MePublic:
    quiet = (
        QuietHours(start=profile.quiet_start, end=profile.quiet_end)
        if profile.quiet_start and profile.quiet_end
        else None
    )
    return MePublic(
        timezone=profile.timezone,
        quiet_hours=quiet,
        interests=list(profile.interests),
        kinds=[k for k in profile.kinds if k in ALL_KINDS],
        timing=TimingPublic(
            every_minutes=timing.every_minutes, pushes_per_day=timing.pushes_per_day
        ),
    )


def _timing(services: Services, person: str) -> TimingSettings:
    return services.timing.points.settings(person)


@router.get("/me", response_model=MePublic)
def read_me(services: ServicesDep, person: PersonDep) -> MePublic:
    return _public(services.people.profile(person), _timing(services, person))


@router.patch("/me", response_model=MePublic)
def update_me(body: MeUpdate, services: ServicesDep, person: PersonDep) -> MePublic:
    """Change timezone, quiet hours (null removes them), interests, wanted tip kinds, or when
    tips are pushed (`timing`: decision interval and daily dose)."""
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
    timing = _timing(services, person)
    if body.timing is not None:
        changes = body.timing.model_dump(exclude_none=True)
        if changes:
            timing = TimingSettings(**{**asdict(timing), **changes})
            services.timing.points.save(person, timing)
    return _public(updated, timing)


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
