"""Web Push: the VAPID key, a person's devices, a test push, and opens (ADR 0012)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Path, Response, status

from api.deps import PersonDep, ServicesDep
from api.errors import BadRequest, Conflict, NotFound
from api.schemas.push import (
    PushDeviceList,
    PushDevicePublic,
    PushKey,
    PushOpened,
    PushSubscriptionIn,
    PushTestAccepted,
)
from integrations.vault import VaultConfigError
from notifier.push import NoDevices, PushNotConfigured
from notifier.subscriptions import Device, SubscriptionRejected

router = APIRouter(prefix="/v1/push", tags=["push"])

DeviceId = Annotated[str, Path(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


def _public(device: Device) -> PushDevicePublic:
    return PushDevicePublic(
        id=device.id,
        service=device.service,
        device=device.user_agent,
        created_at=device.created_at,
        last_success_at=device.last_success_at,
        expires_at=device.expires_at,
    )


def _not_configured(exc: Exception) -> Conflict:
    if isinstance(exc, VaultConfigError):
        return Conflict(str(exc), target="OO_VAULT_KEYS")
    return Conflict(str(exc), target="OO_VAPID_PRIVATE_KEY")


@router.get("/key", response_model=PushKey)
def key(services: ServicesDep, person: PersonDep) -> PushKey:
    """The key a browser subscribes with (`applicationServerKey`)."""
    try:
        return PushKey(public_key=services.push.public_key())
    except PushNotConfigured as exc:
        raise _not_configured(exc) from None


@router.post(
    "/subscriptions",
    response_model=PushDevicePublic,
    status_code=status.HTTP_201_CREATED,
    responses={200: {"description": "Already subscribed: the device, updated"}},
)
def subscribe(
    body: PushSubscriptionIn,
    services: ServicesDep,
    person: PersonDep,
    response: Response,
    user_agent: Annotated[str | None, Header(max_length=512)] = None,
) -> PushDevicePublic:
    """Keep this browser's subscription: tips may now arrive on it as notifications."""
    try:
        device, created = services.push.subscriptions.add(
            person,
            endpoint=body.endpoint,
            p256dh=body.keys.p256dh,
            auth=body.keys.auth,
            expiration_ms=body.expirationTime,
            user_agent=user_agent,
        )
    except SubscriptionRejected as exc:
        raise BadRequest(str(exc), target=exc.field) from None
    except VaultConfigError as exc:
        raise _not_configured(exc) from None
    if not created:
        response.status_code = status.HTTP_200_OK
    return _public(device)


@router.get("/subscriptions", response_model=PushDeviceList)
def devices(services: ServicesDep, person: PersonDep) -> PushDeviceList:
    """This person's devices (no endpoint, no keys)."""
    return PushDeviceList(devices=[_public(d) for d in services.push.subscriptions.devices(person)])


@router.delete("/subscriptions/{subscription_id}", status_code=204)
def unsubscribe(subscription_id: DeviceId, services: ServicesDep, person: PersonDep) -> Response:
    """Stop pushing to one device."""
    if not services.push.subscriptions.delete(person, subscription_id):
        raise NotFound(f"no device has id {subscription_id!r}", target="subscription_id")
    return Response(status_code=204)


@router.post("/test", response_model=PushTestAccepted, status_code=status.HTTP_202_ACCEPTED)
def send_test(services: ServicesDep, person: PersonDep) -> PushTestAccepted:
    """ "This is how a tip will arrive", to every device of this person."""
    try:
        enqueued = services.push.send_test(person)
    except (PushNotConfigured, VaultConfigError) as exc:
        raise _not_configured(exc) from None
    except NoDevices as exc:
        raise Conflict(str(exc), target="subscriptions") from None
    return PushTestAccepted(event_id=enqueued.event_id, devices=enqueued.devices)


@router.post("/opened", status_code=204)
def opened(body: PushOpened, services: ServicesDep, person: PersonDep) -> Response:
    """The person opened a pushed tip (its notification was clicked); the first open counts."""
    first = services.push.opened(person, body.event_id)
    if first is None:
        raise NotFound(f"no push has event id {body.event_id!r}", target="event_id")
    if first:
        services.timing.opened(person, body.event_id)  # its timing decision earns the open
    return Response(status_code=204)
