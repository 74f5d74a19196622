"""Limits enforced before a request reaches a route: body size (also for chunked uploads) and
the number of requests one process works on at once."""

from __future__ import annotations

import json
from collections.abc import Sequence

from fastapi import HTTPException
from prometheus_client import Counter
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SHED = Counter(
    "oo_requests_shed_total", "Requests refused with 503 because the process was at capacity"
)


class BodyTooLarge(HTTPException):
    """Raised from `receive` so FastAPI's body parsing re-raises it instead of a 400."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"the body exceeds {max_bytes} bytes")


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > self.max_bytes:
                    await self._refuse(send)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        await refuse(send, 413, "PayloadSizeExceeded", f"the body exceeds {self.max_bytes} bytes")


class InFlightLimit:
    """Sheds load past `max_in_flight` concurrent requests in this process: 503 + Retry-After.

    Without it an overloaded api accepts every connection and runs them all at once, so every
    request slows down together (measured: p99 13 s at the offered peak rate) instead of the
    excess being refused while the admitted ones keep their latency. Health and metrics are never
    shed, so probes and scrapes see the process as it is. Runs on the event loop: a plain counter.
    """

    def __init__(
        self, app: ASGIApp, max_in_flight: int, exempt: Sequence[str] = ("/health", "/metrics")
    ) -> None:
        self.app = app
        self.max_in_flight = max_in_flight
        self.exempt = tuple(exempt)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("path", "") in self.exempt:
            await self.app(scope, receive, send)
            return
        if self.in_flight >= self.max_in_flight:
            SHED.inc()
            await refuse(
                send,
                503,
                "ServiceUnavailable",
                f"the server is at capacity ({self.max_in_flight} requests in progress); "
                "nothing was recorded, retry after `Retry-After` seconds",
                retry_after=1,
            )
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1


async def refuse(
    send: Send, status: int, code: str, message: str, *, retry_after: int | None = None
) -> None:
    """A Personalizer-shaped error answer written straight to ASGI (no route was reached)."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-ms-error-code", code.encode()),
        (b"cache-control", b"no-store"),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
