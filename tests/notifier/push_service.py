"""A local stand-in for a Web Push service (RFC 8030), strict about what it is sent.

For every POST to `/push/<device>` it checks what a real push service checks and what the
device's browser would:

- the VAPID token (RFC 8292): `Authorization: vapid t=<JWT>, k=<public key>`, the JWT signed
  ES256 by that key (verified with `cryptography`), `aud` the stand-in's origin, `exp` in the
  future and at most 24 hours ahead, `sub` present;
- the headers: `TTL` (required), `Urgency`, `Topic` (at most 32 base64url characters),
  `Content-Encoding: aes128gcm`;
- the body: decrypted (RFC 8291, `http_ece`) with the device's private key and auth secret,
  which only the test holds; the plaintext must be JSON.

It records every push it took, and keeps each device's mailbox as a push service does: a push
with the same topic as an undelivered one replaces it (RFC 8030 §5.4). `script` sets the next
answers of a device (a status and headers); `hold` makes the next push to a device wait,
after it was received in full, until `release` (a sender killed in that window).
"""

from __future__ import annotations

import base64
import json
import os
import threading
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass
class Device:
    """A browser's side of a subscription: the keys the test generated."""

    name: str
    endpoint: str
    private: ec.EllipticCurvePrivateKey
    auth: bytes

    @property
    def p256dh(self) -> str:
        point = self.private.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return b64url(point)

    def subscription(self) -> dict[str, Any]:
        """What `JSON.stringify(pushSubscription)` gives in a browser."""
        return {
            "endpoint": self.endpoint,
            "expirationTime": None,
            "keys": {"p256dh": self.p256dh, "auth": b64url(self.auth)},
        }


@dataclass
class Received:
    device: str
    payload: dict[str, Any]
    ttl: int
    urgency: str | None
    topic: str | None
    claims: dict[str, Any]
    vapid_key: str
    size: int
    status: int


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)


class PushService:
    def __init__(self) -> None:
        self.url = ""
        self.devices: dict[str, Device] = {}
        self.received: list[Received] = []
        self.refused: list[str] = []
        """Why requests were refused (a bad token, a header missing): each is a test failure."""
        self.mailbox: dict[str, dict[str, Received]] = defaultdict(dict)
        """Per device, per topic (or event id without one): the push it would get."""
        self.max_body = 4096
        self._script: dict[str, deque[Reply]] = defaultdict(deque)
        self._held: dict[str, threading.Event] = {}
        self.holding = threading.Event()
        """Set while a held push waits for `release`."""
        self.held: Received | None = None
        """The push whose answer was held."""
        self._lock = threading.Lock()

    @property
    def origin(self) -> str:
        return self.url

    def device(self, name: str) -> Device:
        made = Device(
            name,
            f"{self.url}/push/{name}",
            ec.generate_private_key(ec.SECP256R1()),
            os.urandom(16),
        )
        self.devices[name] = made
        return made

    def script(self, name: str, *replies: Reply) -> None:
        self._script[name].extend(replies)

    def hold(self, name: str) -> None:
        self._held[name] = threading.Event()

    def release(self) -> None:
        for event in self._held.values():
            event.set()

    def count(self, device: str, event_id: str) -> int:
        """POSTs that reached this service for one device and one push."""
        return sum(
            1 for r in self.received if r.device == device and r.payload["event_id"] == event_id
        )

    def delivered(self, device: str) -> list[str]:
        """The event ids the device would get: its mailbox, one per topic."""
        return sorted(r.payload["event_id"] for r in self.mailbox[device].values())

    # ---------------------------------------------------------------------------- checking

    def check_vapid(self, authorization: str | None) -> tuple[dict[str, Any], str]:
        if not authorization or not authorization.startswith("vapid "):
            raise ValueError(f"Authorization must be `vapid t=…, k=…` (got {authorization!r})")
        fields = dict(
            part.strip().split("=", 1) for part in authorization[len("vapid ") :].split(",")
        )
        token, key = fields["t"], fields["k"]
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(unb64url(header_b64))
        if header.get("alg") != "ES256":
            raise ValueError(f"alg must be ES256 (got {header.get('alg')})")
        raw = unb64url(signature_b64)
        if len(raw) != 64:
            raise ValueError("an ES256 signature is r || s, 64 bytes")
        signature = encode_dss_signature(
            int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
        )
        public.verify(  # raises InvalidSignature
            signature, f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256())
        )
        claims = json.loads(unb64url(claims_b64))
        if claims.get("aud") != self.origin:
            raise ValueError(f"aud must be {self.origin} (got {claims.get('aud')})")
        now = time.time()
        if not now < claims["exp"] <= now + 24 * 3600:
            raise ValueError(f"exp must be within 24 hours (got {claims['exp'] - now:.0f}s)")
        if not claims.get("sub"):
            raise ValueError("sub is missing")
        return claims, key

    def take(self, name: str, headers: Any, body: bytes) -> tuple[Reply, Received]:
        claims, key = self.check_vapid(headers.get("Authorization"))
        if headers.get("Content-Encoding") != "aes128gcm":
            raise ValueError("Content-Encoding must be aes128gcm")
        ttl = headers.get("TTL")
        if ttl is None or not ttl.isdigit():
            raise ValueError(f"TTL is required (got {ttl!r})")
        topic = headers.get("Topic")
        if topic is not None and not (
            len(topic) <= 32 and all(c.isalnum() or c in "-_" for c in topic)
        ):
            raise ValueError(f"Topic must be at most 32 base64url characters (got {topic!r})")
        device = self.devices[name]
        plain = http_ece.decrypt(
            body, private_key=device.private, auth_secret=device.auth, version="aes128gcm"
        )
        payload = json.loads(plain)
        with self._lock:
            reply = self._script[name].popleft() if self._script[name] else Reply(201)
        if len(body) > self.max_body and reply.status == 201:
            reply = Reply(413)
        got = Received(
            name,
            payload,
            int(ttl),
            headers.get("Urgency"),
            topic,
            claims,
            key,
            len(body),
            reply.status,
        )
        with self._lock:
            self.received.append(got)
            if reply.status == 201:
                self.mailbox[name][topic or payload["event_id"]] = got
        return reply, got


@pytest.fixture
def push_service() -> Iterator[PushService]:
    service = PushService()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            name = self.path.removeprefix("/push/")
            if name not in service.devices:
                self.send_response(404)
                self.end_headers()
                return
            try:
                reply, got = service.take(name, self.headers, body)
            except Exception as exc:
                service.refused.append(f"{type(exc).__name__}: {exc}")
                reply, got = Reply(400), None
            held = service._held.pop(name, None)
            if held is not None:  # taken in full; the answer waits (a sender may die meanwhile)
                service.held = got
                service.holding.set()
                held.wait(60)
            self.send_response(reply.status)
            for header, value in reply.headers.items():
                self.send_header(header, value)
            self.send_header("Content-Length", "0")
            if reply.status == 201:
                self.send_header("Location", f"{service.url}/message/{len(service.received)}")
            self.end_headers()

        def log_message(self, *_: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    service.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield service
    service.release()
    server.shutdown()
    server.server_close()
