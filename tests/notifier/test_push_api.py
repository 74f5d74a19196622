"""The /v1/push routes and GET /v1/decisions/{event_id}, on both backends: the service's own
notifier thread (`oo serve`) sends to the push-service stand-in."""

from __future__ import annotations

import stat
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from api.app import create_app
from integrations.vault import new_key_entry
from notifier.settings import PushSettings
from notifier.vapid import VapidKey, b64url_decode
from tests.api.decision_helpers import assert_error
from tests.conftest import Backend, fast_learner, wait_until
from tests.notifier.conftest import SUBJECT, listed
from tests.notifier.push_service import PushService, b64url

FIREFOX = "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0"


@pytest.fixture
def make_push_client(
    backend: Backend, push_service: PushService
) -> Iterator[Callable[..., TestClient]]:
    clients: list[TestClient] = []

    def make(*, vapid: bool = True, **push: Any) -> TestClient:
        overrides: dict[str, Any] = {}
        # Timing passes run by hand where a test wants them (`test_timing`), never on the clock.
        values: dict[str, Any] = {
            "push_service_hosts": [listed(push_service)],
            "timing_poll_seconds": 600,
            **push,
        }
        if backend.name == "postgres":
            # Several processes share PostgreSQL: the keys are set, never generated.
            overrides["vault_keys"] = new_key_entry("t1")
            if vapid:
                key = VapidKey.generate(SUBJECT)
                values |= {"vapid_private_key": key.private_text, "vapid_subject": SUBJECT}
        settings = PushSettings(_env_file=None, **values)  # type: ignore[arg-type]
        app = create_app(backend.settings(**overrides), fast_learner(), settings)
        client = TestClient(app)
        client.__enter__()
        clients.append(client)
        return client

    yield make
    for client in reversed(clients):
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_push_client: Callable[..., TestClient]) -> TestClient:
    return make_push_client()


def _services(client: TestClient) -> Any:
    return client.app.state.services  # type: ignore[attr-defined]


def test_the_key_is_a_p256_point(client: TestClient, backend: Backend) -> None:
    reply = client.get("/v1/push/key")
    assert reply.status_code == 200, reply.text
    point = b64url_decode(reply.json()["public_key"])
    assert len(point) == 65 and point[0] == 4
    assert client.get("/v1/push/key").json() == reply.json()
    if backend.name == "embedded":  # generated beside the database, owner-only
        path = Path(backend.database_url.removeprefix("sqlite:///")).parent / "vapid.key"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_postgresql_without_a_vapid_key_answers_409_naming_it(
    make_push_client: Callable[..., TestClient], backend: Backend
) -> None:
    if backend.name != "postgres":
        pytest.skip("the embedded default generates its key")
    client = make_push_client(vapid=False)
    assert_error(client.get("/v1/push/key"), 409, "Conflict", target="OO_VAPID_PRIVATE_KEY")
    assert_error(client.post("/v1/push/test"), 409, "Conflict", target="OO_VAPID_PRIVATE_KEY")


def test_subscribe_list_and_remove_a_device(client: TestClient, push_service: PushService) -> None:
    device = push_service.device("phone")
    body = device.subscription()
    created = client.post("/v1/push/subscriptions", json=body, headers={"User-Agent": FIREFOX})
    assert created.status_code == 201, created.text
    public = created.json()
    assert public["service"] == "127.0.0.1"
    assert public["device"] == "Firefox on Android"
    assert set(public) == {
        "id",
        "service",
        "device",
        "created_at",
        "last_success_at",
        "expires_at",
    }
    # The browser subscribes again on every visit: the same device, updated.
    again = client.post("/v1/push/subscriptions", json=body)
    assert (again.status_code, again.json()["id"]) == (200, public["id"])

    listed_devices = client.get("/v1/push/subscriptions")
    assert [d["id"] for d in listed_devices.json()["devices"]] == [public["id"]]
    for secret in (device.endpoint, "/push/phone", device.p256dh, body["keys"]["auth"]):
        assert secret not in listed_devices.text
        assert secret not in client.get("/v1/me/export").text

    assert client.delete(f"/v1/push/subscriptions/{public['id']}").status_code == 204
    assert client.get("/v1/push/subscriptions").json() == {"devices": []}
    assert_error(
        client.delete(f"/v1/push/subscriptions/{public['id']}"),
        404,
        "ResourceNotFound",
        target="subscription_id",
    )


BAD = [
    ({"endpoint": "https://169.254.169.254/latest/meta-data/"}, "endpoint", "not a known push"),
    ({"endpoint": "http://fcm.googleapis.com/fcm/send/x"}, "endpoint", "https"),
    ({"endpoint": "https://fcm.googleapis.com.evil.com/x"}, "endpoint", "not a known push"),
    ({"endpoint": "https://evil.com#@fcm.googleapis.com"}, "endpoint", "fragment"),
    ({"endpoint": "https://[::ffff:127.0.0.1]/x"}, "endpoint", "not a known push"),
    ({"endpoint": "https://2130706433/x"}, "endpoint", "dotted decimal"),
    ({"keys": {"p256dh": b64url(b"\x04" + b"\x01" * 64), "auth": b64url(b"a" * 16)}},
     "keys.p256dh", "not a point on the P-256 curve"),
    ({"keys": {"p256dh": b64url(b"\x04" * 33), "auth": b64url(b"a" * 16)}},
     "keys.p256dh", "65 bytes"),
    ({"keys": {"p256dh": "not base64!", "auth": b64url(b"a" * 16)}}, "keys.p256dh", "base64url"),
    ({"keys": {"p256dh": None, "auth": b64url(b"a" * 15)}}, "keys.auth", "16-byte"),
    ({"expirationTime": 1e30}, "expirationTime", "milliseconds"),
]  # fmt: skip


@pytest.mark.parametrize(("change", "target", "message"), BAD)
def test_bad_subscriptions_are_refused_naming_the_field(
    client: TestClient,
    push_service: PushService,
    change: dict[str, Any],
    target: str,
    message: str,
) -> None:
    body = push_service.device("phone").subscription()
    change = dict(change)  # the parameters are shared by both backends' runs
    keys = change.pop("keys", None)
    if keys is not None:
        body["keys"] = {k: v if v is not None else body["keys"][k] for k, v in keys.items()}
    body |= change
    assert_error(client.post("/v1/push/subscriptions", json=body), 400, "BadRequest", target=target)
    reply = client.post("/v1/push/subscriptions", json=body)
    assert message in reply.json()["error"]["message"]
    assert client.get("/v1/push/subscriptions").json() == {"devices": []}


def test_a_subscription_without_keys_is_refused(
    client: TestClient, push_service: PushService
) -> None:
    body = push_service.device("phone").subscription()
    del body["keys"]
    reply = client.post("/v1/push/subscriptions", json=body)
    assert reply.status_code == 400
    assert reply.json()["error"]["target"] == "keys"


def test_a_test_push_reaches_every_device(client: TestClient, push_service: PushService) -> None:
    assert_error(client.post("/v1/push/test"), 409, "Conflict", target="subscriptions")
    for name in ("phone", "laptop"):
        reply = client.post("/v1/push/subscriptions", json=push_service.device(name).subscription())
        assert reply.status_code == 201
    accepted = client.post("/v1/push/test")
    assert accepted.status_code == 202, accepted.text
    event_id = accepted.json()["event_id"]
    assert accepted.json()["devices"] == 2

    wait_until(lambda: len(push_service.received) == 2)
    assert push_service.refused == []
    for got in push_service.received:
        assert got.payload["event_id"] == event_id
        assert got.payload["body"] == "This is how a tip will arrive."
        assert (got.urgency, got.topic) == ("high", "test")
    outbox = _services(client).push.outbox
    wait_until(lambda: {d["state"] for d in outbox.deliveries(event_id)} == {"sent"})
    # A device's last success is written just after its delivery is closed (two writes).
    wait_until(
        lambda: all(
            d["last_success_at"] for d in client.get("/v1/push/subscriptions").json()["devices"]
        )
    )

    # Opening it is recorded once; a push that is not the person's is not found.
    assert client.post("/v1/push/opened", json={"event_id": event_id}).status_code == 204
    assert client.post("/v1/push/opened", json={"event_id": event_id}).status_code == 204
    assert _services(client).push.opened("someone-else", event_id) is None
    assert_error(
        client.post("/v1/push/opened", json={"event_id": "nope"}),
        404,
        "ResourceNotFound",
        target="event_id",
    )
    (pushed,) = [
        s["data"] for s in client.get("/v1/me/export").json()["sections"] if s["name"] == "pushes"
    ]
    assert pushed[0]["event_id"] == event_id and pushed[0]["opened_at"]
    assert {d["state"] for d in pushed[0]["deliveries"]} == {"sent"}


def test_erasure_deletes_devices_and_pushes(
    client: TestClient, push_service: PushService, backend: Backend
) -> None:
    client.post("/v1/push/subscriptions", json=push_service.device("phone").subscription())
    client.post("/v1/push/test")
    assert client.delete("/v1/me").status_code == 204
    engine = sa.create_engine(backend.database_url)
    with engine.connect() as conn:
        for table in ("push_subscriptions", "push_messages", "push_deliveries"):
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
    engine.dispose()
    assert client.get("/v1/push/subscriptions").json() == {"devices": []}


def test_a_tip_is_shown_again_by_its_event_id(client: TestClient) -> None:
    tip = client.post("/v1/recommend", json={"defer_activation": True}).json()
    reply = client.get(f"/v1/decisions/{tip['event_id']}")
    assert reply.status_code == 200, reply.text
    assert reply.json() == tip
    # Reading it decides nothing and activates nothing.
    logged = _services(client).store.get(tip["event_id"])
    assert logged.decision.activated_at is None
    assert_error(client.get("/v1/decisions/unknown"), 404, "ResourceNotFound", target="event_id")
