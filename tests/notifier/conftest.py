"""Web Push test fixtures: the push-service stand-in, and the notifier's parts on both backends,
driven by a clock the test moves (no test waits for a backoff or a TTL)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.engine import Engine

from bandit.store import make_engine
from integrations.vault import Vault, new_key_entry, parse_keys
from notifier.outbox import Outbox
from notifier.settings import PushSettings
from notifier.subscriptions import SubscriptionStore
from notifier.vapid import VapidKey
from notifier.webpush import WebPushSender
from notifier.worker import Notifier
from tests.conftest import Backend
from tests.notifier.push_service import PushService, push_service  # noqa: F401 - a fixture

SUBJECT = "mailto:ops@oo.example"


@dataclass
class Clock:
    now: datetime = field(default_factory=lambda: datetime(2026, 12, 2, 9, 0, tzinfo=UTC))

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def listed(service: PushService) -> str:
    """The stand-in's `host:port`, as an operator lists it in OO_PUSH_SERVICE_HOSTS."""
    return service.url.removeprefix("http://")


def push_settings(service: PushService, key: VapidKey | None = None, **values: Any) -> PushSettings:
    key = key or VapidKey.generate(SUBJECT)
    return PushSettings(
        _env_file=None,  # type: ignore[call-arg]
        push_service_hosts=[listed(service)],
        vapid_private_key=key.private_text,
        vapid_subject=key.subject,
        **values,
    )


@dataclass
class Rig:
    """Subscriptions, outbox, sender and loop on one database, with the test's clock."""

    engine: Engine
    vault: Vault
    key: VapidKey
    clock: Clock
    settings: PushSettings
    subscriptions: SubscriptionStore
    outbox: Outbox
    notifier: Notifier


@pytest.fixture
def rig(backend: Backend, push_service: PushService) -> Iterator[Rig]:  # noqa: F811
    engine = make_engine(backend.database_url, pool_size=4)
    vault = Vault(parse_keys(new_key_entry("t1")))
    key = VapidKey.generate(SUBJECT)
    clock = Clock()
    settings = push_settings(push_service, key, push_max_attempts=4)
    subscriptions = SubscriptionStore(engine, lambda: vault, settings.services, clock=clock)
    outbox = Outbox(engine, subscriptions, clock=clock)
    sender = WebPushSender(lambda: key, settings.services, timeout=5)
    notifier = Notifier(outbox, sender, settings, clock=clock)
    yield Rig(engine, vault, key, clock, settings, subscriptions, outbox, notifier)
    notifier.close()
    engine.dispose()
