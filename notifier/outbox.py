"""The push outbox: a push is recorded before it is sent, and sent at least once (ADR 0012).

A push is a message (one row per event id: the sealed payload, its topic, TTL and urgency, and
when the person opened it) with one delivery per device (one row per event id and subscription:
its state, attempts, when it is next due). `enqueue` writes both in one transaction and is
idempotent per event id, so a caller that crashed and asks again never makes a second push.

A sender `claim`s due deliveries: each moves to `sending` under a lease, with its attempt
counted, by a compare-and-swap on its attempt count (two senders never hold the same one).
The push service's answer settles it (`sent`, `gone`, `failed`, `expired`) or puts it back
(`retry`). A sender that dies leaves `sending` rows behind: they are taken again once their lease
runs out, or at once by the next notifier to start (`recover`: one notifier per deployment).
Such a push may have reached the push service already; it is sent again with the same `Topic`,
which replaces an undelivered copy at the push service, and the service worker shows a copy
of a push it has shown already under the same tag, silently (the residual window is in the ADR).

A payload is held only while one of its deliveries is open; then its ciphertext is dropped.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from bandit.events import utcnow
from integrations.vault import RotationReport, TokenDecryptError, VaultConfigError
from notifier.sealed import SealedRows
from notifier.subscriptions import PushSubscription, SubscriptionStore
from notifier.tables import (
    EXPIRED,
    FAILED,
    GONE,
    OPEN_STATES,
    PENDING,
    SENDING,
    SENT,
    PushDeliveryRow,
    PushMessageRow,
)

log = logging.getLogger(__name__)

messages = PushMessageRow.__table__  # type: ignore[attr-defined]
deliveries = PushDeliveryRow.__table__  # type: ignore[attr-defined]

MAX_PAYLOAD_BYTES = 3900
"""Push services take 4096 bytes of ciphertext; the aes128gcm header and tag need 103."""
MAX_TITLE_CHARS = 200
TRIMMED_TITLE_CHARS = 80
MESSAGE_LABEL = "push-message:"
URGENCIES = ("very-low", "low", "normal", "high")
_TOPIC = re.compile(r"[A-Za-z0-9_-]{1,32}")
_URL = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]{0,500}")


@dataclass(frozen=True, slots=True)
class PushMessage:
    """What a notification shows, and where clicking it leads (a path on the page)."""

    title: str
    body: str = ""
    url: str = "/"

    def __post_init__(self) -> None:
        if not self.title.strip():
            raise ValueError("`title` must not be empty")
        if not _URL.fullmatch(self.url) or self.url.startswith("//"):
            raise ValueError(f"`url` must be a path on the page, like /?tip=… (got {self.url!r})")


@dataclass(frozen=True, slots=True)
class Enqueued:
    event_id: str
    devices: int
    """Deliveries recorded: the person's devices when it was first enqueued."""
    created: bool
    """False when this event id was enqueued before (nothing was added)."""


@dataclass(frozen=True, slots=True, repr=False)
class Claim:
    """One delivery held by a sender: what to send, to which device."""

    event_id: str
    subscription_id: str
    principal: str
    attempts: int
    """Counting this one."""
    payload: dict[str, Any]
    topic: str
    urgency: str
    expires_at: datetime
    subscription: PushSubscription
    trimmed: bool = False

    def __repr__(self) -> str:
        return f"Claim({self.event_id!r}, {self.subscription_id!r}, attempt {self.attempts})"

    def body(self) -> bytes:
        return encode(self.payload)

    def ttl(self, now: datetime) -> int:
        return max(0, int((self.expires_at - now).total_seconds()))


@dataclass
class Settled:
    """What `claim` closed on its own: expired pushes, removed devices, unreadable rows."""

    states: dict[str, int] = field(default_factory=dict)

    def add(self, state: str) -> None:
        self.states[state] = self.states.get(state, 0) + 1


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def fit(payload: dict[str, Any], limit: int = MAX_PAYLOAD_BYTES) -> dict[str, Any]:
    """The payload within `limit` bytes: the body shortened first, then the title."""
    fitted = dict(payload)
    for key in ("body", "title"):
        while len(encode(fitted)) > limit and fitted[key]:
            excess = len(encode(fitted)) - limit
            text = fitted[key]
            # Characters may take up to 4 bytes; cut at least one, then re-measure.
            fitted[key] = text[: max(0, len(text) - max(1, excess // 4)) - 1] + "…"
            if fitted[key] == "…":
                fitted[key] = ""
    return fitted


def trimmed(payload: dict[str, Any]) -> dict[str, Any]:
    """After a 413: the title alone, shortened; the page shows the rest when opened."""
    smaller = dict(payload, body="")
    if len(smaller["title"]) > TRIMMED_TITLE_CHARS:
        smaller["title"] = smaller["title"][: TRIMMED_TITLE_CHARS - 1] + "…"
    return smaller


class Outbox:
    def __init__(
        self,
        engine: Engine,
        subscriptions: SubscriptionStore,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.engine = engine
        self.subscriptions = subscriptions
        self.clock = clock
        self.autocommit = engine.execution_options(isolation_level="AUTOCOMMIT")

    # ------------------------------------------------------------------------------ writing

    def enqueue(
        self,
        person: str,
        event_id: str,
        message: PushMessage,
        *,
        ttl_seconds: int,
        kind: str = "tip",
        topic: str = "tip",
        urgency: str = "normal",
        timing_event_id: str | None = None,
    ) -> Enqueued:
        """Record a push to every device `person` has now; idempotent per `event_id`."""
        if not _TOPIC.fullmatch(topic):
            raise ValueError(f"`topic` must be 1-32 base64url characters (got {topic!r})")
        if urgency not in URGENCIES:
            raise ValueError(f"`urgency` must be one of {', '.join(URGENCIES)} (got {urgency!r})")
        if not 0 <= ttl_seconds <= 28 * 86400:
            raise ValueError(f"`ttl_seconds` must be 0 to 28 days (got {ttl_seconds})")
        now = self.clock()
        expires_at = now + timedelta(seconds=ttl_seconds)
        payload = fit(
            {
                "v": 1,
                "event_id": event_id,
                "kind": kind,
                "title": message.title[:MAX_TITLE_CHARS],
                "body": message.body,
                "url": message.url,
                "topic": topic,
                "expires_at": int(expires_at.timestamp() * 1000),
            }
        )
        try:
            return self._record(
                person,
                event_id,
                payload,
                kind,
                topic,
                urgency,
                ttl_seconds,
                timing_event_id,
                now,
                expires_at,
            )
        except sa.exc.IntegrityError:  # the same event id, enqueued at this very moment
            return Enqueued(event_id, len(self.deliveries(event_id)), created=False)

    def _record(
        self,
        person: str,
        event_id: str,
        payload: dict[str, Any],
        kind: str,
        topic: str,
        urgency: str,
        ttl_seconds: int,
        timing_event_id: str | None,
        now: datetime,
        expires_at: datetime,
    ) -> Enqueued:
        vault = self.subscriptions.vault()
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(sa.func.count())
                .select_from(deliveries)
                .where(deliveries.c.event_id == event_id)
            ).scalar_one()
            if conn.execute(
                sa.select(messages.c.event_id).where(messages.c.event_id == event_id)
            ).first():
                return Enqueued(event_id, int(exists), created=False)
            conn.execute(
                messages.insert().values(
                    event_id=event_id,
                    principal=person,
                    kind=kind,
                    timing_event_id=timing_event_id,
                    ciphertext=vault.seal_bytes(
                        encode(payload), principal=person, label=MESSAGE_LABEL + event_id
                    ),
                    key_id=vault.current_key_id,
                    topic=topic,
                    urgency=urgency,
                    ttl_seconds=ttl_seconds,
                    created_at=now,
                    expires_at=expires_at,
                )
            )
            devices = self.subscriptions.ids(conn, person)
            for subscription_id in devices:
                conn.execute(
                    deliveries.insert().values(
                        event_id=event_id,
                        subscription_id=subscription_id,
                        principal=person,
                        state=PENDING,
                        attempts=0,
                        next_attempt_at=now,
                    )
                )
            if not devices:
                _drop_payload(conn, event_id)
        return Enqueued(event_id, len(devices), created=True)

    def recover(self) -> int:
        """At start: every delivery a dead sender held is due now (one notifier per deployment)."""
        with self.autocommit.connect() as conn:
            moved = conn.execute(
                deliveries.update()
                .where(deliveries.c.state == SENDING)
                .values(state=PENDING, lease_until=None, next_attempt_at=self.clock())
            ).rowcount
        if moved:
            log.warning("push: %d pushes were being sent when the last notifier stopped", moved)
        return int(moved or 0)

    # ------------------------------------------------------------------------------ sending

    def claim(self, *, limit: int, lease: timedelta) -> tuple[list[Claim], Settled]:
        """Hold up to `limit` due deliveries for `lease`, oldest first."""
        now = self.clock()
        due = sa.or_(
            sa.and_(deliveries.c.state == PENDING, deliveries.c.next_attempt_at <= now),
            sa.and_(deliveries.c.state == SENDING, deliveries.c.lease_until <= now),
        )
        with self.autocommit.connect() as conn:
            candidates = list(
                conn.execute(
                    sa.select(
                        deliveries.c.event_id,
                        deliveries.c.subscription_id,
                        deliveries.c.attempts,
                        deliveries.c.trimmed,
                    )
                    .where(due)
                    .order_by(deliveries.c.next_attempt_at)
                    .limit(limit)
                )
            )
        claims: list[Claim] = []
        settled = Settled()
        for event_id, subscription_id, attempts, was_trimmed in candidates:
            key = _key(event_id, subscription_id)
            with self.engine.begin() as conn:
                won = conn.execute(
                    deliveries.update()
                    .where(*key, deliveries.c.attempts == attempts, due)
                    .values(state=SENDING, lease_until=now + lease, attempts=attempts + 1)
                ).rowcount
                message = (
                    conn.execute(sa.select(messages).where(messages.c.event_id == event_id)).first()
                    if won
                    else None
                )
            if not won:
                continue  # another sender took it
            held = _Held(event_id, subscription_id, attempts + 1)
            if message is None or message.ciphertext is None:
                self._close(held, FAILED, error="the push's payload is gone")
                settled.add(FAILED)
                continue
            if now >= message.expires_at:
                self._close(held, EXPIRED, error="its TTL ran out before a push service took it")
                settled.add(EXPIRED)
                continue
            try:
                opened = self.subscriptions.open(subscription_id)
                if opened is None:
                    self._close(held, GONE, error="the device was removed")
                    settled.add(GONE)
                    continue
                vault = self.subscriptions.vault()
                payload = json.loads(
                    vault.open_bytes(
                        message.ciphertext,
                        principal=message.principal,
                        label=MESSAGE_LABEL + event_id,
                        what=f"push {event_id!r}",
                    )
                )
            except (TokenDecryptError, VaultConfigError) as exc:
                log.warning("push: %s to %s cannot be opened: %s", event_id, subscription_id, exc)
                self._close(held, FAILED, error="sealed data cannot be opened")
                settled.add(FAILED)
                continue
            claims.append(
                Claim(
                    event_id=event_id,
                    subscription_id=subscription_id,
                    principal=message.principal,
                    attempts=attempts + 1,
                    payload=trimmed(payload) if was_trimmed else payload,
                    topic=message.topic,
                    urgency=message.urgency,
                    expires_at=message.expires_at,
                    subscription=opened[1],
                    trimmed=was_trimmed,
                )
            )
        return claims, settled

    def sent(self, claim: Claim, *, status: int) -> bool:
        """The push service took it; False when the delivery was no longer this sender's."""
        now = self.clock()
        done = self._close(claim, SENT, status=status, sent_at=now)
        if done:
            self.subscriptions.succeeded(claim.subscription_id, now)
        return done

    def retry(self, claim: Claim, *, at: datetime, status: int | None, error: str) -> bool:
        with self.engine.begin() as conn:
            updated = conn.execute(
                deliveries.update()
                .where(*_held(claim))
                .values(
                    state=PENDING,
                    lease_until=None,
                    next_attempt_at=at,
                    last_status=status,
                    last_error=error[:200],
                )
            ).rowcount
        return bool(updated)

    def settle(self, claim: Claim, state: str, *, status: int | None, error: str) -> bool:
        """Close a delivery for good: `gone`, `failed` or `expired`."""
        if state not in (GONE, FAILED, EXPIRED):
            raise ValueError(f"`state` must be gone, failed or expired (got {state!r})")
        return self._close(claim, state, status=status, error=error)

    def mark_trimmed(self, claim: Claim) -> None:
        with self.autocommit.connect() as conn:
            conn.execute(deliveries.update().where(*_held(claim)).values(trimmed=True))

    def _close(
        self,
        held: Claim | _Held,
        state: str,
        *,
        status: int | None = None,
        error: str | None = None,
        sent_at: datetime | None = None,
    ) -> bool:
        with self.engine.begin() as conn:
            updated = conn.execute(
                deliveries.update()
                .where(*_held(held))
                .values(
                    state=state,
                    lease_until=None,
                    last_status=status,
                    last_error=None if error is None else error[:200],
                    sent_at=sent_at,
                )
            ).rowcount
            if updated:
                _drop_payload_when_done(conn, held.event_id)
        return bool(updated)

    # ------------------------------------------------------------------------------ reading

    def opened(self, person: str, event_id: str) -> bool | None:
        """Record that `person` opened the push of `event_id`: True the first time, False
        after, None when it is not a push of theirs."""
        with self.engine.begin() as conn:
            first = conn.execute(
                messages.update()
                .where(
                    messages.c.event_id == event_id,
                    messages.c.principal == person,
                    messages.c.opened_at.is_(None),
                )
                .values(opened_at=self.clock())
            ).rowcount
            if first:
                return True
            owned = conn.execute(
                sa.select(messages.c.event_id).where(
                    messages.c.event_id == event_id, messages.c.principal == person
                )
            ).first()
        return False if owned is not None else None

    def timing_event_id(self, person: str, event_id: str) -> str | None:
        """The timing decision that pushed `person` the tip of `event_id` (None: not pushed by
        one, or not theirs)."""
        query = sa.select(messages.c.timing_event_id).where(
            messages.c.event_id == event_id, messages.c.principal == person
        )
        with self.autocommit.connect() as conn:
            return conn.execute(query).scalar()

    def deliveries(self, event_id: str) -> list[dict[str, Any]]:
        """Each device's delivery of one push: state, attempts, last status (no secrets)."""
        query = (
            sa.select(
                deliveries.c.subscription_id,
                deliveries.c.state,
                deliveries.c.attempts,
                deliveries.c.last_status,
                deliveries.c.last_error,
                deliveries.c.next_attempt_at,
                deliveries.c.sent_at,
                deliveries.c.trimmed,
            )
            .where(deliveries.c.event_id == event_id)
            .order_by(deliveries.c.subscription_id)
        )
        with self.autocommit.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    def export(self, person: str) -> list[dict[str, Any]]:
        """The person's pushes for `GET /v1/me/export`: when, to which device, what happened."""
        with self.autocommit.connect() as conn:
            sent = conn.execute(
                sa.select(
                    messages.c.event_id,
                    messages.c.kind,
                    messages.c.created_at,
                    messages.c.opened_at,
                    deliveries.c.subscription_id,
                    deliveries.c.state,
                    deliveries.c.sent_at,
                )
                .select_from(
                    messages.outerjoin(deliveries, deliveries.c.event_id == messages.c.event_id)
                )
                .where(messages.c.principal == person)
                .order_by(messages.c.created_at, messages.c.event_id, deliveries.c.subscription_id)
            )
            out: dict[str, dict[str, Any]] = {}
            for row in sent:
                entry = out.setdefault(
                    row.event_id,
                    {
                        "event_id": row.event_id,
                        "kind": row.kind,
                        "created_at": row.created_at,
                        "opened_at": row.opened_at,
                        "deliveries": [],
                    },
                )
                if row.subscription_id is not None:
                    entry["deliveries"].append(
                        {"device": row.subscription_id, "state": row.state, "sent_at": row.sent_at}
                    )
        return list(out.values())

    def forget(self, person: str) -> int:
        """Erase every push of `person` (DELETE /v1/me)."""
        with self.engine.begin() as conn:
            conn.execute(deliveries.delete().where(deliveries.c.principal == person))
            return int(
                conn.execute(messages.delete().where(messages.c.principal == person)).rowcount
            )

    def prune(self, before: datetime) -> int:
        """Forget pushes created before `before` whose deliveries are all closed."""
        with self.engine.begin() as conn:
            old = list(
                conn.execute(
                    sa.select(messages.c.event_id).where(
                        messages.c.created_at < before,
                        ~sa.exists().where(
                            deliveries.c.event_id == messages.c.event_id,
                            deliveries.c.state.in_(OPEN_STATES),
                        ),
                    )
                ).scalars()
            )
            for start in range(0, len(old), 500):
                chunk = old[start : start + 500]
                conn.execute(deliveries.delete().where(deliveries.c.event_id.in_(chunk)))
                conn.execute(messages.delete().where(messages.c.event_id.in_(chunk)))
        return len(old)

    def rotate(
        self, *, on_progress: Callable[[RotationReport], None] | None = None
    ) -> RotationReport:
        """Re-seal the payloads not yet sent under the vault's newest key (`oo vault rotate`)."""
        rows = SealedRows(self.engine, messages, messages.c.event_id, MESSAGE_LABEL)
        return rows.rotate(self.subscriptions.vault(), on_progress)


@dataclass(frozen=True, slots=True)
class _Held:
    event_id: str
    subscription_id: str
    attempts: int


def _key(event_id: str, subscription_id: str) -> tuple[sa.ColumnElement[bool], ...]:
    return (deliveries.c.event_id == event_id, deliveries.c.subscription_id == subscription_id)


def _held(held: Claim | _Held) -> tuple[sa.ColumnElement[bool], ...]:
    """Still this sender's: sending, at the attempt it claimed."""
    return (
        *_key(held.event_id, held.subscription_id),
        deliveries.c.state == SENDING,
        deliveries.c.attempts == held.attempts,
    )


def _drop_payload(conn: Connection, event_id: str) -> None:
    conn.execute(
        messages.update()
        .where(messages.c.event_id == event_id)
        .values(ciphertext=None, key_id=None)
    )


def _drop_payload_when_done(conn: Connection, event_id: str) -> None:
    still_open = conn.execute(
        sa.select(deliveries.c.event_id)
        .where(deliveries.c.event_id == event_id, deliveries.c.state.in_(OPEN_STATES))
        .limit(1)
    ).first()
    if still_open is None:
        _drop_payload(conn, event_id)
