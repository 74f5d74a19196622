"""Web Push as one service: the key, people's devices, the outbox, and the loop that sends.

`Push` is what the api holds (`services.push`) and what `oo notifier` runs: the api's routes
subscribe devices, list and remove them, and enqueue a test push; the notifier's loop
(`Push.notifier`) sends. The timing surface enqueues tips through `Push.enqueue`.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import Engine

from integrations.personal_data import PersonalData
from integrations.vault import Vault
from notifier.endpoints import Resolver
from notifier.metrics import OPENS
from notifier.outbox import Enqueued, Outbox, PushMessage
from notifier.settings import PushSettings
from notifier.subscriptions import SubscriptionStore
from notifier.vapid import VapidConfigError, VapidKey, load
from notifier.webpush import WebPushSender
from notifier.worker import Notifier, TimingPass

log = logging.getLogger(__name__)

TEST_TITLE = "oO"
TEST_BODY = "This is how a tip will arrive."
TEST_TTL_SECONDS = 600
TIP_TOPIC = "tip"
"""Every tip push carries this topic: an unopened earlier tip is replaced, not stacked."""


class PushNotConfigured(Exception):
    """Web Push cannot be used here; the message names the settings it needs."""


class NoDevices(Exception):
    """The person has no device to push to."""


def tip_url(event_id: str) -> str:
    """Where clicking a tip's notification leads: the page, showing exactly that tip."""
    return f"/?tip={event_id}"


class Push:
    def __init__(
        self,
        engine: Engine,
        settings: PushSettings,
        *,
        vault_factory: Callable[[], Vault],
        local_key_file: Path | None,
    ) -> None:
        self.settings = settings
        self.services = settings.services
        self.subscriptions = SubscriptionStore(engine, vault_factory, self.services)
        self.outbox = Outbox(engine, self.subscriptions)
        self.local_key_file = local_key_file
        self.notifier: Notifier | None = None
        """The sending loop, where this process runs one (`oo serve`, `oo notifier`)."""
        self._key: VapidKey | None = None
        self._lock = threading.Lock()

    def key(self) -> VapidKey:
        """The deployment's VAPID key (generated on first use in the embedded default)."""
        with self._lock:
            if self._key is None:
                try:
                    self._key = load(
                        self.settings.private_key,
                        self.settings.vapid_subject,
                        local_file=self.local_key_file,
                    )
                except VapidConfigError as exc:
                    raise PushNotConfigured(str(exc)) from None
            return self._key

    def public_key(self) -> str:
        return self.key().public_key

    def enqueue(
        self,
        person: str,
        event_id: str,
        message: PushMessage,
        *,
        ttl_seconds: int | None = None,
        kind: str = "tip",
        topic: str = TIP_TOPIC,
        urgency: str = "normal",
        timing_event_id: str | None = None,
    ) -> Enqueued:
        """Record a push to each of the person's devices, and wake the loop if it runs here."""
        enqueued = self.outbox.enqueue(
            person,
            event_id,
            message,
            ttl_seconds=self.settings.push_ttl_seconds if ttl_seconds is None else ttl_seconds,
            kind=kind,
            topic=topic,
            urgency=urgency,
            timing_event_id=timing_event_id,
        )
        if self.notifier is not None and enqueued.devices:
            self.notifier.wake()
        return enqueued

    def send_test(self, person: str) -> Enqueued:
        """ "This is how a tip will arrive", to every device of the person."""
        self.key()  # refuse now, not in the loop, when no key can be had
        if not self.subscriptions.devices(person):
            raise NoDevices("no device gets pushes yet: turn notifications on in the page first")
        return self.enqueue(
            person,
            f"test-{uuid.uuid4().hex}",
            PushMessage(TEST_TITLE, TEST_BODY, "/"),
            ttl_seconds=TEST_TTL_SECONDS,
            kind="test",
            topic="test",
            urgency="high",
        )

    def opened(self, person: str, event_id: str) -> bool | None:
        """The person opened the push of `event_id` (None: no such push of theirs)."""
        first = self.outbox.opened(person, event_id)
        if first:
            OPENS.inc()
        return first

    def loop(
        self, *, resolve: Resolver | None = None, timing: TimingPass | None = None
    ) -> Notifier:
        """The sending loop of this process (`run` it on a thread; `close` it after); with
        `timing`, the loop also runs the timing surface's decision points."""
        sender = WebPushSender(
            self.key,
            self.services,
            timeout=self.settings.push_timeout_seconds,
            resolve=resolve,
        )
        self.notifier = Notifier(self.outbox, sender, self.settings, timing=timing)
        return self.notifier

    def register(self, registry: PersonalData) -> None:
        """Devices and pushes are personal data: exported without secrets, erased with the rest."""
        registry.add_export_section(
            "push_devices",
            "Devices that get tips by Web Push: push service, device, when (never the endpoint "
            "or keys)",
            self.subscriptions.export,
        )
        registry.add_export_section(
            "pushes",
            "Tips pushed to your devices: when, to which device, whether you opened them",
            self.outbox.export,
        )
        registry.add_eraser("pushes", self.outbox.forget)
        registry.add_eraser("push_devices", self.subscriptions.forget)
