"""`oo notifier` as its own process: /health, killed with SIGKILL in the middle of a send, and
refusing to start without a key where it cannot make one.

The kill lands in the worst window: the push service has taken a push in full and the notifier
has not heard its answer (nor marked it sent). After a restart every push is delivered, each
device's mailbox holds each push once (the one resent carried the same Topic, which replaces
the undelivered copy, RFC 8030 §5.4), and no push that was marked sent is sent again.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from bandit.store import make_engine
from integrations.vault import Vault, new_key_entry, parse_keys
from notifier.outbox import Outbox, PushMessage
from notifier.settings import PushSettings
from notifier.subscriptions import SubscriptionStore
from notifier.vapid import VapidKey
from tests.conftest import Backend, free_port, wait_until
from tests.notifier.conftest import SUBJECT, listed
from tests.notifier.push_service import PushService

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
DEVICES = ("d1", "d2", "d3")
EVENTS = [f"ev-{i:02d}" for i in range(15)]  # 45 deliveries: more than one pass takes


class Notifier:
    """`python -m api.cli notifier` on the test's database, restartable on its port."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.port = free_port()
        self.child: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - closed with the process
        self.child = subprocess.Popen(
            [sys.executable, "-m", "api.cli", "notifier", "--port", str(self.port)],
            env=self.env,
            stdout=out,
            stderr=out,
            cwd=ROOT,
        )
        wait_until(self.healthy, timeout=60, interval=0.2)

    def healthy(self) -> bool:
        assert self.child is not None and self.child.poll() is None, self.log.read_text()
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill9(self) -> None:
        assert self.child is not None
        self.child.send_signal(signal.SIGKILL)
        self.child.wait(timeout=10)

    def stop(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.terminate()
            self.child.wait(timeout=20)


def _environment(
    backend: Backend, service: PushService, vault_keys: str, key: VapidKey
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OO_")}
    return env | {
        "OO_DATABASE_URL": backend.database_url,
        "OO_VAULT_KEYS": vault_keys,
        "OO_VAPID_PRIVATE_KEY": key.private_text,
        "OO_VAPID_SUBJECT": SUBJECT,
        "OO_PUSH_SERVICE_HOSTS": listed(service),
        "OO_PUSH_POLL_SECONDS": "0.2",
        "OO_LOG_LEVEL": "WARNING",
    }


@pytest.fixture
def notifier(backend: Backend, push_service: PushService, tmp_path: Path) -> Iterator[Notifier]:
    vault_keys = new_key_entry("t1")
    key = VapidKey.generate(SUBJECT)
    made = Notifier(_environment(backend, push_service, vault_keys, key), tmp_path / "notifier.log")
    made.env["TEST_VAULT_KEYS"] = vault_keys
    yield made
    made.stop()


def test_kill_9_mid_send_loses_no_push_and_sends_none_twice(
    notifier: Notifier, backend: Backend, push_service: PushService
) -> None:
    engine = make_engine(backend.database_url, pool_size=2)
    vault = Vault(parse_keys(notifier.env["TEST_VAULT_KEYS"]))
    settings = PushSettings(_env_file=None, push_service_hosts=[listed(push_service)])  # type: ignore[call-arg]
    devices = SubscriptionStore(engine, lambda: vault, settings.services)
    for name in DEVICES:
        sub = push_service.device(name).subscription()
        devices.add(
            "ada", endpoint=sub["endpoint"], p256dh=sub["keys"]["p256dh"], auth=sub["keys"]["auth"]
        )
    outbox = Outbox(engine, devices)
    push_service.hold("d2")  # its first push is taken in full; the answer never comes back

    notifier.start()
    for event_id in EVENTS:
        outbox.enqueue(
            "ada",
            event_id,
            PushMessage(f"tip {event_id}", url=f"/?tip={event_id}"),
            ttl_seconds=3600,
            topic=event_id,
        )
    assert push_service.holding.wait(60), notifier.log.read_text()

    def states() -> dict[str, int]:
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text("SELECT state, count(*) FROM push_deliveries GROUP BY state")
            )
            return {state: int(count) for state, count in rows}

    # The rest of that pass settles; the pass itself waits on the held answer, so everything
    # enqueued after the pass's claim (more than a pass holds) is still pending.
    wait_until(lambda: states().get("sending") == 1, timeout=30, interval=0.1)
    at_kill = states()
    notifier.kill9()
    push_service.release()
    held = push_service.held
    assert held is not None and held.device == "d2"
    assert at_kill["pending"] >= len(DEVICES) * len(EVENTS) - 32

    notifier.start()  # the new notifier takes over what the dead one held

    def settled() -> bool:
        with engine.connect() as conn:
            states = conn.execute(
                sa.text("SELECT state, count(*) FROM push_deliveries GROUP BY state")
            ).all()
        return dict(states) == {"sent": len(DEVICES) * len(EVENTS)}

    wait_until(settled, timeout=60, interval=0.2)
    assert push_service.refused == []
    # No push lost, none twice: each device's mailbox holds each push exactly once.
    for name in DEVICES:
        assert push_service.delivered(name) == EVENTS, name
    # Only the push in flight at the kill reached the push service twice, with the same Topic.
    twice = {
        (r.device, r.payload["event_id"])
        for r in push_service.received
        if push_service.count(r.device, r.payload["event_id"]) > 1
    }
    assert twice == {("d2", held.payload["event_id"])}
    assert push_service.count("d2", held.payload["event_id"]) == 2
    copies = [
        r
        for r in push_service.received
        if (r.device, r.payload["event_id"]) == ("d2", held.payload["event_id"])
    ]
    assert copies[0].topic == copies[1].topic == held.topic
    with engine.connect() as conn:
        attempts = dict(
            conn.execute(
                sa.text("SELECT attempts, count(*) FROM push_deliveries GROUP BY attempts")
            ).all()
        )
    assert attempts == {1: len(DEVICES) * len(EVENTS) - 1, 2: 1}
    engine.dispose()


def test_the_notifier_serves_health_and_metrics(notifier: Notifier) -> None:
    notifier.start()
    health = httpx.get(notifier.url + "/health").json()
    assert health == {
        "status": "ok",
        "role": "notifier",
        "checks": {"database": "ok", "notifier": "ok"},
    }
    metrics = httpx.get(notifier.url + "/metrics").text
    assert "oo_push_sends_total" in metrics
    assert "oo_push_outbox_due" in metrics


def test_postgresql_without_a_vapid_key_refuses_to_start(
    notifier: Notifier, backend: Backend
) -> None:
    if backend.name != "postgres":
        pytest.skip("the embedded default generates its key")
    env = {k: v for k, v in notifier.env.items() if not k.startswith("OO_VAPID_")}
    done = subprocess.run(
        [sys.executable, "-m", "api.cli", "notifier", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert "OO_VAPID_PRIVATE_KEY and OO_VAPID_SUBJECT" in done.stderr
    broken = subprocess.run(
        [sys.executable, "-m", "api.cli", "notifier", "--port", str(free_port())],
        env=env | {"OO_VAPID_PRIVATE_KEY": "short", "OO_VAPID_SUBJECT": SUBJECT},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=60,
    )
    assert broken.returncode == 2, broken.stderr
    assert "32 bytes in base64url" in broken.stderr
