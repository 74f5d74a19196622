"""People's devices: Web Push subscriptions, sealed in the token vault.

A subscription's endpoint and keys are capability secrets: whoever holds them can push to the
device. They are checked (the endpoint against the push-service allow-list, the keys as a P-256
point and a 16-byte secret), sealed by the vault bound to their row, and shown to the person
only as an id, the push service's host and a device label.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import Connection, Engine

from bandit.events import utcnow
from integrations.vault import RotationReport, Vault
from notifier.endpoints import EndpointRefused, PushServices
from notifier.sealed import SealedRows
from notifier.tables import OPEN_STATES, PushDeliveryRow, PushSubscriptionRow
from notifier.vapid import b64url_decode

log = logging.getLogger(__name__)

subscriptions = PushSubscriptionRow.__table__  # type: ignore[attr-defined]
deliveries = PushDeliveryRow.__table__  # type: ignore[attr-defined]

AUTH_BYTES = 16
MAX_DEVICES = 20
"""Devices one person may have; the oldest goes when a new one comes past it."""


class SubscriptionRejected(ValueError):
    """A subscription oO will not keep; `field` names the part at fault (`keys.p256dh`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"`{field}` {message}")
        self.field = field


@dataclass(frozen=True, slots=True, repr=False)
class PushSubscription:
    """What a push needs: where to POST and the keys to encrypt for. Never shown or logged."""

    endpoint: str
    p256dh: str
    auth: str

    def __repr__(self) -> str:
        return "PushSubscription(endpoint='***', p256dh='***', auth='***')"

    def to_bytes(self) -> bytes:
        fields = {"endpoint": self.endpoint, "p256dh": self.p256dh, "auth": self.auth}
        return json.dumps(fields, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> PushSubscription:
        fields = json.loads(data)
        return cls(str(fields["endpoint"]), str(fields["p256dh"]), str(fields["auth"]))


@dataclass(frozen=True, slots=True)
class Device:
    """A subscription as its person sees it: no endpoint, no keys."""

    id: str
    service: str
    user_agent: str | None
    created_at: datetime
    last_success_at: datetime | None
    expires_at: datetime | None


def check_keys(p256dh: object, auth: object) -> None:
    """`keys.p256dh` is a P-256 point (65 bytes, uncompressed) and `keys.auth` 16 bytes."""
    try:
        point = b64url_decode(p256dh) if isinstance(p256dh, str) else b""
    except ValueError:
        raise SubscriptionRejected("keys.p256dh", "must be base64url") from None
    if len(point) != 65 or point[0] != 4:
        raise SubscriptionRejected(
            "keys.p256dh", f"must be an uncompressed P-256 point, 65 bytes (got {len(point)})"
        )
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    except ValueError:
        raise SubscriptionRejected("keys.p256dh", "is not a point on the P-256 curve") from None
    try:
        secret = b64url_decode(auth) if isinstance(auth, str) else b""
    except ValueError:
        raise SubscriptionRejected("keys.auth", "must be base64url") from None
    if len(secret) != AUTH_BYTES:
        raise SubscriptionRejected(
            "keys.auth", f"must be a {AUTH_BYTES}-byte secret (got {len(secret)})"
        )


_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("SamsungBrowser/", "Samsung Internet"),
    ("Firefox/", "Firefox"),
    ("FxiOS/", "Firefox"),
    ("CriOS/", "Chrome"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iPadOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def device_label(user_agent: str | None) -> str | None:
    """`Firefox on Android`: enough for a person to tell their devices apart, nothing more."""
    if not user_agent:
        return None
    browser = next((name for mark, name in _BROWSERS if mark in user_agent), None)
    system = next((name for mark, name in _SYSTEMS if mark in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or "a browser"


def endpoint_hash(endpoint: str) -> str:
    return hashlib.sha256(endpoint.encode()).hexdigest()


SUBSCRIPTION_LABEL = "push-subscription:"


def _label(subscription_id: str) -> str:
    return SUBSCRIPTION_LABEL + subscription_id


class SubscriptionStore:
    """Devices on the service's database; the vault is opened on first use."""

    def __init__(
        self,
        engine: Engine,
        vault_factory: Callable[[], Vault],
        services: PushServices,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.services = services
        self.clock = clock
        self._vault_factory = vault_factory
        self._vault: Vault | None = None
        self._lock = threading.Lock()
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    def vault(self) -> Vault:
        with self._lock:
            if self._vault is None:
                self._vault = self._vault_factory()
            return self._vault

    def add(
        self,
        person: str,
        *,
        endpoint: object,
        p256dh: object,
        auth: object,
        expiration_ms: float | None = None,
        user_agent: str | None = None,
    ) -> tuple[Device, bool]:
        """Keep a browser's subscription; True when it is new.

        The same endpoint again updates its row (browsers resubscribe on every visit); an
        endpoint another person held moves to this one (the browser is theirs now).

        Raises
        ------
        SubscriptionRejected
            Naming `endpoint`, `keys.p256dh`, `keys.auth` or `expirationTime`.
        """
        try:
            checked = self.services.check(endpoint)
        except EndpointRefused as exc:
            raise SubscriptionRejected("endpoint", str(exc)) from None
        check_keys(p256dh, auth)
        assert isinstance(p256dh, str) and isinstance(auth, str)
        expires_at = None
        if expiration_ms is not None:
            try:
                expires_at = datetime.fromtimestamp(expiration_ms / 1000, UTC)
            except (OverflowError, OSError, ValueError):
                raise SubscriptionRejected(
                    "expirationTime", "must be milliseconds since 1970, or null"
                ) from None
        secret = PushSubscription(checked.url, p256dh, auth)
        try:
            subscription_id, created = self._upsert(
                person, secret, checked.host, user_agent, expires_at
            )
        except sa.exc.IntegrityError:  # the same endpoint, subscribed at this very moment
            subscription_id, created = self._upsert(
                person, secret, checked.host, user_agent, expires_at
            )
        device = self.device(person, subscription_id)
        assert device is not None
        if created:
            log.info("push: %s subscribed a device on %s", person, checked.host)
        return device, created

    def _upsert(
        self,
        person: str,
        secret: PushSubscription,
        service: str,
        user_agent: str | None,
        expires_at: datetime | None,
    ) -> tuple[str, bool]:
        digest = endpoint_hash(secret.endpoint)
        label = device_label(user_agent)
        now = self.clock()
        vault = self.vault()
        with self.engine.begin() as conn:
            row = conn.execute(
                sa.select(subscriptions.c.id, subscriptions.c.principal).where(
                    subscriptions.c.endpoint_hash == digest
                )
            ).first()
            if row is not None and row.principal == person:
                conn.execute(
                    subscriptions.update()
                    .where(subscriptions.c.id == row.id)
                    .values(
                        ciphertext=vault.seal_bytes(
                            secret.to_bytes(), principal=person, label=_label(row.id)
                        ),
                        key_id=vault.current_key_id,
                        user_agent=label,
                        expires_at=expires_at,
                    )
                )
                created, subscription_id = False, row.id
            else:
                if row is not None:
                    _delete(conn, [row.id])
                subscription_id = secrets.token_urlsafe(16)
                conn.execute(
                    subscriptions.insert().values(
                        id=subscription_id,
                        principal=person,
                        endpoint_hash=digest,
                        service=service,
                        ciphertext=vault.seal_bytes(
                            secret.to_bytes(), principal=person, label=_label(subscription_id)
                        ),
                        key_id=vault.current_key_id,
                        user_agent=label,
                        created_at=now,
                        expires_at=expires_at,
                    )
                )
                created = True
                self._keep_newest(conn, person)
        return subscription_id, created

    def _keep_newest(self, conn: Connection, person: str) -> None:
        surplus = conn.execute(
            sa.select(subscriptions.c.id)
            .where(subscriptions.c.principal == person)
            .order_by(subscriptions.c.created_at.desc(), subscriptions.c.id)
            .offset(MAX_DEVICES)
        ).scalars()
        _delete(conn, list(surplus))

    def devices(self, person: str) -> list[Device]:
        query = (
            sa.select(*_DEVICE_COLUMNS)
            .where(subscriptions.c.principal == person)
            .order_by(subscriptions.c.created_at, subscriptions.c.id)
        )
        with self.autocommit.connect() as conn:
            return [Device(*row) for row in conn.execute(query)]

    def device(self, person: str, subscription_id: str) -> Device | None:
        query = sa.select(*_DEVICE_COLUMNS).where(
            subscriptions.c.principal == person, subscriptions.c.id == subscription_id
        )
        with self.autocommit.connect() as conn:
            row = conn.execute(query).first()
        return None if row is None else Device(*row)

    def ids(self, conn: Connection, person: str) -> list[str]:
        """The person's subscription ids, on the caller's transaction."""
        query = sa.select(subscriptions.c.id).where(subscriptions.c.principal == person)
        return list(conn.execute(query.order_by(subscriptions.c.id)).scalars())

    def delete(self, person: str, subscription_id: str) -> bool:
        """Remove one of `person`'s devices (and close its open deliveries)."""
        with self.engine.begin() as conn:
            owned = conn.execute(
                sa.select(subscriptions.c.id).where(
                    subscriptions.c.id == subscription_id, subscriptions.c.principal == person
                )
            ).first()
            if owned is None:
                return False
            _delete(conn, [subscription_id])
        return True

    def remove(self, subscription_id: str) -> None:
        """The push service says the subscription is gone (404, 410): forget it."""
        with self.engine.begin() as conn:
            _delete(conn, [subscription_id])
        log.info("push: subscription %s is gone; removed", subscription_id)

    def forget(self, person: str) -> int:
        """Erase every device of `person` (DELETE /v1/me)."""
        with self.engine.begin() as conn:
            ids = self.ids(conn, person)
            _delete(conn, ids)
        return len(ids)

    def open(self, subscription_id: str) -> tuple[str, PushSubscription] | None:
        """The owner and the opened subscription, or None when it was removed."""
        query = sa.select(subscriptions.c.principal, subscriptions.c.ciphertext).where(
            subscriptions.c.id == subscription_id
        )
        with self.autocommit.connect() as conn:
            row = conn.execute(query).first()
        if row is None:
            return None
        plain = self.vault().open_bytes(
            row.ciphertext,
            principal=row.principal,
            label=_label(subscription_id),
            what=f"push subscription {subscription_id!r}",
        )
        return row.principal, PushSubscription.from_bytes(plain)

    def succeeded(self, subscription_id: str, at: datetime) -> None:
        with self.autocommit.connect() as conn:
            conn.execute(
                subscriptions.update()
                .where(subscriptions.c.id == subscription_id)
                .values(last_success_at=at)
            )

    def export(self, person: str) -> list[dict[str, object]]:
        """The person's devices for `GET /v1/me/export`: never an endpoint or a key."""
        return [
            {
                "id": device.id,
                "service": device.service,
                "device": device.user_agent,
                "created_at": device.created_at,
                "last_success_at": device.last_success_at,
            }
            for device in self.devices(person)
        ]

    def rotate(
        self, *, on_progress: Callable[[RotationReport], None] | None = None
    ) -> RotationReport:
        """Re-seal every subscription under the vault's newest key (`oo vault rotate`)."""
        rows = SealedRows(self.engine, subscriptions, subscriptions.c.id, SUBSCRIPTION_LABEL)
        return rows.rotate(self.vault(), on_progress)


_DEVICE_COLUMNS = (
    subscriptions.c.id,
    subscriptions.c.service,
    subscriptions.c.user_agent,
    subscriptions.c.created_at,
    subscriptions.c.last_success_at,
    subscriptions.c.expires_at,
)
_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")


def valid_id(subscription_id: str) -> bool:
    return bool(_ID.fullmatch(subscription_id))


def _delete(conn: Connection, ids: list[str]) -> None:
    """Delete subscriptions and close their open deliveries (a later push cannot reach them)."""
    if not ids:
        return
    conn.execute(
        deliveries.update()
        .where(deliveries.c.subscription_id.in_(ids), deliveries.c.state.in_(OPEN_STATES))
        .values(state="gone", lease_until=None)
    )
    conn.execute(subscriptions.delete().where(subscriptions.c.id.in_(ids)))
