"""A local stand-in for Todoist's API v1: a real HTTP server on loopback, in a thread.

It serves `GET /api/v1/tasks` the way Todoist documents it (bearer token, `limit` and `cursor`
query parameters, `{"results": [...], "next_cursor": ...}`), and can be scripted to answer the
next requests with any status, headers, body or delay (401, 429 with Retry-After, 5xx, a
response slower than the client's deadline).
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

TASKS_PATH = "/api/v1/tasks"


@dataclass
class Reply:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0


@dataclass(frozen=True)
class Seen:
    path: str
    query: dict[str, str]
    authorization: str | None


@dataclass
class FakeTodoist:
    base_url: str = ""
    tokens: set[str] = field(default_factory=set)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    page_size: int = 200
    script: deque[Reply] = field(default_factory=deque)
    seen: list[Seen] = field(default_factory=list)

    def answer(self, path: str, query: dict[str, str], authorization: str | None) -> Reply:
        self.seen.append(Seen(path, query, authorization))
        if self.script:
            return self.script.popleft()
        if path != TASKS_PATH:
            return Reply(404, {"error": "Not found"})
        token = (authorization or "").removeprefix("Bearer ")
        if token not in self.tokens:
            return Reply(401, {"error": "Invalid token", "error_tag": "AUTH_INVALID_TOKEN"})
        limit = min(int(query.get("limit", "50")), self.page_size)
        start = int(query.get("cursor", "0"))
        page = self.tasks[start : start + limit]
        end = start + len(page)
        next_cursor = str(end) if end < len(self.tasks) else None
        return Reply(200, {"results": page, "next_cursor": next_cursor})


def todoist_task(task_id: str, content: str = "Water the plants", **fields: Any) -> dict[str, Any]:
    """A task object shaped like Todoist API v1's, with overridable fields."""
    task: dict[str, Any] = {
        "id": task_id,
        "user_id": "2671355",
        "project_id": "6Jf8VQXxpwv56VQ7",
        "section_id": None,
        "parent_id": None,
        "added_by_uid": "2671355",
        "assigned_by_uid": None,
        "responsible_uid": None,
        "labels": [],
        "deadline": None,
        "duration": None,
        "checked": False,
        "is_deleted": False,
        "added_at": "2026-11-20T10:00:00.000000Z",
        "completed_at": None,
        "updated_at": "2026-11-20T10:00:00.000000Z",
        "due": None,
        "priority": 1,
        "child_order": 1,
        "content": content,
        "description": "",
        "note_count": 0,
        "day_order": -1,
        "is_collapsed": False,
    }
    task.update(fields)
    return task


def _handler(fake: FakeTodoist) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
            send(self, fake.answer(parts.path, query, self.headers.get("Authorization")))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


def send(handler: BaseHTTPRequestHandler, reply: Reply) -> None:
    """Answer `reply` the way the providers do: after its delay, as JSON, with its headers."""
    if reply.delay_s:
        time.sleep(reply.delay_s)
    payload = b"" if reply.body is None else json.dumps(reply.body).encode()
    try:
        handler.send_response(reply.status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(payload)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up first (the deadline tests)


@contextmanager
def serving(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """`handler` on a loopback port, in a thread, while the block runs; yields its root URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    host, port = server.server_address[:2]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://{host!s}:{port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def todoist() -> Iterator[FakeTodoist]:
    fake = FakeTodoist()
    with serving(_handler(fake)) as url:
        fake.base_url = f"{url}/api/v1"
        yield fake
