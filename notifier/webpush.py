"""One push to one device: RFC 8291 encryption, a RFC 8292 VAPID token, a RFC 8030 POST.

The payload is encrypted by pywebpush (`aes128gcm` through http-ece, with a fresh ephemeral
key and salt per push) and the token signed by py-vapid; nothing here is cryptography of its
own. The POST goes to the address `notifier.endpoints` checked at this moment, with the
endpoint's own host in `Host` and in TLS's server name (so the certificate is checked against
it), no proxy from the environment and no redirect followed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import httpx
from pywebpush import WebPusher

from bandit.clock import utcnow
from integrations.providers import retry_after_seconds
from notifier.endpoints import EndpointRefused, PushServices, Resolver
from notifier.subscriptions import PushSubscription
from notifier.vapid import VapidKey

log = logging.getLogger(__name__)


class AddressRefused(EndpointRefused):
    """The endpoint's host resolves to an address oO does not POST to (or to none)."""


@dataclass(frozen=True, slots=True)
class Answer:
    """What the push service said; `status` is None when it never answered."""

    status: int | None
    retry_after: float | None = None
    """Seconds the push service asked to wait (`Retry-After`), when it did."""
    error: str | None = None


class WebPushSender:
    def __init__(
        self,
        key: Callable[[], VapidKey],
        services: PushServices,
        *,
        timeout: float,
        resolve: Resolver | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.key = key
        self.services = services
        self.resolve = resolve
        self.clock = clock or utcnow
        # No proxy from the environment: it would resolve the name itself, past the check.
        self.client = httpx.Client(timeout=timeout, trust_env=False, follow_redirects=False)

    def close(self) -> None:
        self.client.close()

    def send(
        self, subscription: PushSubscription, payload: bytes, *, ttl: int, urgency: str, topic: str
    ) -> Answer:
        """POST one encrypted push; raises EndpointRefused when the endpoint may not be used."""
        endpoint = self.services.check(subscription.endpoint)  # the allow-list may have changed
        try:
            target = self.services.target(endpoint, self.resolve)
        except EndpointRefused as exc:
            raise AddressRefused(str(exc)) from None
        info = {
            "endpoint": subscription.endpoint,
            "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
        }
        body = WebPusher(info).encode(payload, content_encoding="aes128gcm")["body"]
        headers = {
            "Host": endpoint.netloc,
            "TTL": str(ttl),
            "Urgency": urgency,
            "Topic": topic,
            "Content-Encoding": "aes128gcm",
            "Content-Type": "application/octet-stream",
            "Authorization": self.key().authorization(endpoint.origin),
        }
        extensions = {"sni_hostname": endpoint.host} if endpoint.scheme == "https" else {}
        try:
            response = self.client.post(
                target.pinned_url, content=body, headers=headers, extensions=extensions
            )
        except httpx.HTTPError as exc:
            return Answer(None, error=f"no answer from {endpoint.host} ({type(exc).__name__})")
        return Answer(
            response.status_code,
            retry_after=retry_after_seconds(response.headers.get("Retry-After"), self.clock()),
            error=None if response.is_success else _reason(response),
        )


def _reason(response: httpx.Response) -> str:
    """A push service's refusal, short, for the delivery row and the log (never the URL)."""
    text = " ".join(response.text.split())[:120]
    return f"{response.status_code} {response.reason_phrase}" + (f": {text}" if text else "")
