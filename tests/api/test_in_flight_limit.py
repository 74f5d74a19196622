"""Past its in-flight cap a process sheds requests with a clean 503 instead of slowing down
every request it holds; health and metrics are never shed."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from starlette.types import Message, Receive, Scope, Send

from api.limits import SHED, InFlightLimit


def scope(path: str) -> Scope:
    return {"type": "http", "method": "POST", "path": path, "headers": []}


async def nothing() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


class Held:
    """An app whose requests stay in progress until released."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.entered += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app: Any, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await app(scope(path), nothing, send)
    start, body = sent[0], sent[1]
    return start["status"], dict(start["headers"]), body["body"]


def test_requests_past_the_cap_are_shed_and_capacity_comes_back() -> None:
    async def scenario() -> None:
        inner = Held()
        app = InFlightLimit(inner, max_in_flight=2)
        shed_before = SHED._value.get()
        held = [asyncio.create_task(call(app, "/v1/recommend")) for _ in range(2)]
        while inner.entered < 2:
            await asyncio.sleep(0)

        status, headers, body = await call(app, "/v1/recommend")
        assert status == 503
        assert headers[b"retry-after"] == b"1"
        assert headers[b"x-ms-error-code"] == b"ServiceUnavailable"
        assert "at capacity (2 requests in progress)" in json.loads(body)["error"]["message"]
        assert SHED._value.get() == shed_before + 1
        assert inner.entered == 2  # the shed request never reached the app

        # Probes and scrapes still reach the process while it is full.
        health = asyncio.create_task(call(app, "/health"))
        while inner.entered < 3:
            await asyncio.sleep(0)

        inner.release.set()
        assert [(await task)[0] for task in [*held, health]] == [200, 200, 200]
        assert app.in_flight == 0
        assert (await call(app, "/v1/recommend"))[0] == 200

    asyncio.run(scenario())


def test_a_failing_request_gives_its_slot_back() -> None:
    async def boom(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("route failed")

    async def scenario() -> None:
        app = InFlightLimit(boom, max_in_flight=1)
        for _ in range(3):
            with pytest.raises(RuntimeError, match="route failed"):
                await call(app, "/v1/recommend")
        assert app.in_flight == 0

    asyncio.run(scenario())
