"""The sender and the outbox against the local push-service stand-in, on both backends.

The stand-in verifies every push as a push service and the device would (VAPID token, headers,
aes128gcm decryption with the device's keys), and answers each documented status; each test
checks what oO does about the answer.
"""

from __future__ import annotations

from datetime import timedelta

import sqlalchemy as sa

from notifier.outbox import MAX_PAYLOAD_BYTES, PushMessage, encode
from notifier.worker import backoff
from tests.notifier.conftest import Rig
from tests.notifier.push_service import PushService, Reply

ADA = "ada"


def _subscribe(rig: Rig, service: PushService, name: str, person: str = ADA) -> str:
    device = service.device(name)
    sub = device.subscription()
    stored, created = rig.subscriptions.add(
        person, endpoint=sub["endpoint"], p256dh=sub["keys"]["p256dh"], auth=sub["keys"]["auth"]
    )
    assert created
    return stored.id


def _tip(event_id: str, title: str = "Drink a glass of water", body: str = "Now.") -> PushMessage:
    return PushMessage(title, body, f"/?tip={event_id}")


def _state(rig: Rig, event_id: str) -> dict[str, dict[str, object]]:
    return {d["subscription_id"]: d for d in rig.outbox.deliveries(event_id)}


def test_a_push_arrives_signed_encrypted_and_with_its_headers(
    rig: Rig, push_service: PushService
) -> None:
    phone = _subscribe(rig, push_service, "phone")
    laptop = _subscribe(rig, push_service, "laptop")
    enqueued = rig.outbox.enqueue(ADA, "ev-1", _tip("ev-1"), ttl_seconds=1800)
    assert (enqueued.devices, enqueued.created) == (2, True)

    assert rig.notifier.run_once() == 2
    assert push_service.refused == []
    assert sorted(r.device for r in push_service.received) == ["laptop", "phone"]
    for got in push_service.received:
        assert got.payload["event_id"] == "ev-1"
        assert got.payload["title"] == "Drink a glass of water"
        assert got.payload["url"] == "/?tip=ev-1"
        assert (got.ttl, got.urgency, got.topic) == (1800, "normal", "tip")
        assert got.claims["aud"] == push_service.origin
        assert got.claims["sub"] == rig.key.subject
        assert got.vapid_key == rig.key.public_key
    states = _state(rig, "ev-1")
    assert {states[d]["state"] for d in (phone, laptop)} == {"sent"}
    assert rig.subscriptions.devices(ADA)[0].last_success_at == rig.clock.now
    # Nothing is left to send, and the payload is no longer held.
    assert rig.notifier.run_once() == 0
    with rig.engine.connect() as conn:
        held = conn.execute(sa.text("SELECT ciphertext FROM push_messages")).scalar_one()
    assert held is None


def test_enqueue_is_idempotent_per_event_id(rig: Rig, push_service: PushService) -> None:
    _subscribe(rig, push_service, "phone")
    first = rig.outbox.enqueue(ADA, "ev-1", _tip("ev-1"), ttl_seconds=600)
    again = rig.outbox.enqueue(ADA, "ev-1", _tip("ev-1", "Another title"), ttl_seconds=600)
    assert (first.created, again.created, again.devices) == (True, False, 1)
    rig.notifier.run_once()
    rig.notifier.run_once()
    assert push_service.count("phone", "ev-1") == 1


def test_404_and_410_remove_the_device(rig: Rig, push_service: PushService) -> None:
    gone = _subscribe(rig, push_service, "gone")
    unknown = _subscribe(rig, push_service, "unknown")
    kept = _subscribe(rig, push_service, "kept")
    push_service.script("gone", Reply(410))
    push_service.script("unknown", Reply(404))
    rig.outbox.enqueue(ADA, "ev-1", _tip("ev-1"), ttl_seconds=600)
    rig.notifier.run_once()
    states = _state(rig, "ev-1")
    assert (states[gone]["state"], states[gone]["last_status"]) == ("gone", 410)
    assert (states[unknown]["state"], states[unknown]["last_status"]) == ("gone", 404)
    assert states[kept]["state"] == "sent"
    assert [d.id for d in rig.subscriptions.devices(ADA)] == [kept]
    # The next push goes to the device that is left, only.
    rig.outbox.enqueue(ADA, "ev-2", _tip("ev-2"), ttl_seconds=600)
    rig.notifier.run_once()
    assert set(_state(rig, "ev-2")) == {kept}


def test_413_sends_the_title_alone_and_a_second_413_fails(
    rig: Rig, push_service: PushService
) -> None:
    phone = _subscribe(rig, push_service, "phone")
    push_service.script("phone", Reply(413))
    rig.outbox.enqueue(ADA, "ev-1", _tip("ev-1", "T" * 150, "a long body"), ttl_seconds=600)
    rig.notifier.run_once()
    first, second = push_service.received
    assert (first.status, first.payload["body"]) == (413, "a long body")
    assert (second.status, second.payload["body"]) == (201, "")
    assert len(second.payload["title"]) == 80 and second.payload["title"].endswith("…")
    assert second.payload["event_id"] == "ev-1"
    assert (_state(rig, "ev-1")[phone]["state"], _state(rig, "ev-1")[phone]["trimmed"]) == (
        "sent",
        True,
    )

    push_service.script("phone", Reply(413), Reply(413))
    rig.outbox.enqueue(ADA, "ev-2", _tip("ev-2"), ttl_seconds=600)
    rig.notifier.run_once()
    assert (_state(rig, "ev-2")[phone]["state"], _state(rig, "ev-2")[phone]["last_status"]) == (
        "failed",
        413,
    )


def test_429_waits_for_retry_after_and_5xx_backs_off(rig: Rig, push_service: PushService) -> None:
    phone = _subscribe(rig, push_service, "phone")
    push_service.script("phone", Reply(429, {"Retry-After": "120"}), Reply(503), Reply(201))
    rig.outbox.enqueue(ADA, "ev-1", _tip("ev-1"), ttl_seconds=3600)
    start = rig.clock.now

    rig.notifier.run_once()
    delivery = _state(rig, "ev-1")[phone]
    assert (delivery["state"], delivery["last_status"]) == ("pending", 429)
    # Retry-After (120 s) is longer than the first backoff (5 s): it wins.
    assert delivery["next_attempt_at"] == start + timedelta(seconds=120)
    rig.clock.advance(119)
    assert rig.notifier.run_once() == 0  # not due yet
    rig.clock.advance(1)
    rig.notifier.run_once()
    delivery = _state(rig, "ev-1")[phone]
    assert (delivery["state"], delivery["last_status"]) == ("pending", 503)
    assert delivery["next_attempt_at"] == rig.clock.now + timedelta(seconds=backoff(2))
    rig.clock.advance(backoff(2))
    rig.notifier.run_once()
    delivery = _state(rig, "ev-1")[phone]
    assert (delivery["state"], delivery["attempts"]) == ("sent", 3)
    # Each attempt carried what was left of the TTL.
    assert [r.ttl for r in push_service.received] == [3600, 3480, 3480 - int(backoff(2))]
    assert push_service.delivered("phone") == ["ev-1"]


def test_retries_stop_at_the_ttl_or_the_last_attempt(rig: Rig, push_service: PushService) -> None:
    phone = _subscribe(rig, push_service, "phone")
    push_service.script("phone", Reply(500))
    rig.outbox.enqueue(ADA, "short", _tip("short"), ttl_seconds=3)  # the backoff is 5 s
    rig.notifier.run_once()
    assert _state(rig, "short")[phone]["state"] == "expired"

    push_service.script("phone", *[Reply(500)] * 4)
    rig.outbox.enqueue(ADA, "long", _tip("long"), ttl_seconds=86400)
    for attempt in range(1, 5):
        assert rig.notifier.run_once() == 1
        rig.clock.advance(backoff(attempt))
    delivery = _state(rig, "long")[phone]
    assert (delivery["state"], delivery["attempts"], delivery["last_status"]) == ("failed", 4, 500)
    assert "gave up after 4 attempts" in str(delivery["last_error"])


def test_a_push_past_its_ttl_is_not_sent(rig: Rig, push_service: PushService) -> None:
    phone = _subscribe(rig, push_service, "phone")
    rig.outbox.enqueue(ADA, "ev-1", _tip("ev-1"), ttl_seconds=60)
    rig.clock.advance(60)
    rig.notifier.run_once()
    assert _state(rig, "ev-1")[phone]["state"] == "expired"
    assert push_service.received == []


def test_a_newer_tip_replaces_an_undelivered_one(rig: Rig, push_service: PushService) -> None:
    _subscribe(rig, push_service, "phone")
    rig.outbox.enqueue(ADA, "ev-1", _tip("ev-1"), ttl_seconds=600)
    rig.outbox.enqueue(ADA, "test-1", PushMessage("oO", "test"), ttl_seconds=600, topic="test")
    rig.notifier.run_once()
    rig.outbox.enqueue(ADA, "ev-2", _tip("ev-2"), ttl_seconds=600)
    rig.notifier.run_once()
    # One tip waits on the device (the newer), beside the test push with its own topic.
    assert push_service.delivered("phone") == ["ev-2", "test-1"]


def test_the_payload_fits_a_push_service(rig: Rig, push_service: PushService) -> None:
    _subscribe(rig, push_service, "phone")
    rig.outbox.enqueue(ADA, "ev-1", _tip("ev-1", "é" * 500, "ü" * 5000), ttl_seconds=600)
    rig.notifier.run_once()
    (got,) = push_service.received
    assert got.status == 201
    assert len(encode(got.payload)) <= MAX_PAYLOAD_BYTES
    assert got.size <= 4096
    assert got.payload["title"] == "é" * 200
    assert got.payload["body"].startswith("üüü") and got.payload["body"].endswith("…")


def test_the_database_holds_no_endpoint_key_or_payload_in_clear(
    rig: Rig, push_service: PushService
) -> None:
    _subscribe(rig, push_service, "phone")
    device = push_service.devices["phone"]
    push_service.script("phone", Reply(503))  # keeps the payload sealed in the outbox
    rig.outbox.enqueue(ADA, "ev-1", _tip("ev-1", "Secret task title"), ttl_seconds=600)
    rig.notifier.run_once()
    with rig.engine.connect() as conn:
        rows = [
            repr(tuple(row))
            for table in ("push_subscriptions", "push_messages", "push_deliveries")
            for row in conn.execute(sa.text(f"SELECT * FROM {table}"))
        ]
    text = "\n".join(rows)
    for secret in (
        device.endpoint,
        "/push/phone",
        device.p256dh,
        device.subscription()["keys"]["auth"],
        "Secret task title",
    ):
        assert secret not in text, secret
    assert "127.0.0.1" in text  # the push service's host is shown to its person
