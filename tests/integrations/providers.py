"""Local stand-ins for Todoist's and Google's OAuth and API endpoints, on one loopback server.

Each endpoint answers the way the provider documents it:

- Todoist: ``POST /todoist/oauth/access_token`` (form: client_id, client_secret, code) →
  ``{"access_token", "token_type"}``; ``POST /todoist/api/v1/access_tokens/revoke`` (JSON:
  client_id, client_secret, access_token) → 204; ``GET /todoist/api/v1/tasks`` →
  ``{"results", "next_cursor"}``.
- Google: ``POST /google/token`` (authorization_code and refresh_token grants) →
  ``{"access_token", "expires_in", "refresh_token", "scope", "token_type"}`` or
  ``{"error": "invalid_grant"}``; ``POST /google/revoke`` (form: token) → 200;
  ``POST /google/calendar/v3/freeBusy`` → ``{"kind": "calendar#freeBusy", "calendars":
  {"primary": {"busy": [...]}}}``.

`script` replaces the next answers of one path with any status, headers, body or delay (401,
429 with Retry-After, 5xx, a response slower than the deadline).
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.integrations.conftest import Reply, send, serving, todoist_task

CLIENT_ID = "oo-client-id-4711"
CLIENT_SECRET = "oo-client-secret-s3cr3t-0815"


@dataclass
class Call:
    method: str
    path: str
    query: dict[str, str]
    form: dict[str, str]
    json: Any
    authorization: str | None


@dataclass
class FakeProviders:
    url: str = ""
    codes: dict[str, str | None] = field(default_factory=dict)
    """Authorization codes the token endpoints accept, once each, with their PKCE challenge."""
    access_tokens: set[str] = field(default_factory=set)
    refresh_tokens: set[str] = field(default_factory=set)
    issued: list[str] = field(default_factory=list)
    """Every access and refresh token handed out, for the leak checks."""
    revoked: list[str] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    busy: list[dict[str, str]] = field(default_factory=list)
    google_expires_in: int = 3599
    calls: list[Call] = field(default_factory=list)
    scripts: dict[str, deque[Reply]] = field(default_factory=lambda: defaultdict(deque))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def code(self, challenge: str | None = None) -> str:
        """A code the provider would hand out after consent (bound to a PKCE challenge)."""
        code = "code-" + secrets.token_hex(8)
        self.codes[code] = challenge
        return code

    def script(self, path: str, *replies: Reply) -> None:
        self.scripts[path].extend(replies)

    def calls_to(self, path: str) -> list[Call]:
        return [call for call in self.calls if call.path == path]

    def _token(self, prefix: str) -> str:
        token = f"{prefix}-{secrets.token_hex(12)}"
        self.issued.append(token)
        return token

    def answer(self, call: Call) -> Reply:
        with self.lock:
            self.calls.append(call)
            scripted = self.scripts.get(call.path)
            if scripted:
                return scripted.popleft()
            return self._answer(call)

    def _answer(self, call: Call) -> Reply:
        path, form = call.path, call.form
        if path == "/todoist/oauth/access_token":
            if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
                return Reply(401, {"error": "invalid_client"})
            if form.get("code") not in self.codes:
                return Reply(400, {"error": "invalid_grant"})
            self.codes.pop(form["code"])
            token = self._token("todoist")
            self.access_tokens.add(token)
            return Reply(200, {"access_token": token, "token_type": "Bearer"})
        if path == "/todoist/api/v1/access_tokens/revoke":
            body = call.json or {}
            if (body.get("client_id"), body.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
                return Reply(401, {"error": "invalid_client"})
            self.access_tokens.discard(body.get("access_token"))
            self.revoked.append(body.get("access_token"))
            return Reply(204)
        if path == "/todoist/api/v1/tasks":
            if not self._bearer_ok(call):
                return Reply(401, {"error": "Invalid token", "error_tag": "AUTH_INVALID_TOKEN"})
            return Reply(200, {"results": self.tasks, "next_cursor": None})
        if path == "/google/token":
            if (form.get("client_id"), form.get("client_secret")) != (CLIENT_ID, CLIENT_SECRET):
                return Reply(401, {"error": "invalid_client"})
            if form.get("grant_type") == "authorization_code":
                if form.get("code") not in self.codes:
                    return Reply(400, {"error": "invalid_grant", "error_description": "Bad"})
                challenge = self.codes.pop(form["code"])
                if challenge is not None and challenge != s256(form.get("code_verifier", "")):
                    return Reply(400, {"error": "invalid_grant", "error_description": "PKCE"})
                refresh = self._token("google-refresh")
                self.refresh_tokens.add(refresh)
            elif form.get("grant_type") == "refresh_token":
                if form.get("refresh_token") not in self.refresh_tokens:
                    return Reply(400, {"error": "invalid_grant", "error_description": "Revoked"})
                refresh = None
            else:
                return Reply(400, {"error": "unsupported_grant_type"})
            access = self._token("google-access")
            self.access_tokens.add(access)
            body: dict[str, Any] = {
                "access_token": access,
                "expires_in": self.google_expires_in,
                "scope": "https://www.googleapis.com/auth/calendar.freebusy",
                "token_type": "Bearer",
            }
            if refresh:
                body["refresh_token"] = refresh
            return Reply(200, body)
        if path == "/google/revoke":
            token = form.get("token", "")
            self.refresh_tokens.discard(token)
            self.access_tokens.discard(token)
            self.revoked.append(token)
            return Reply(200, {})
        if path == "/google/calendar/v3/freeBusy":
            if not self._bearer_ok(call):
                return Reply(401, {"error": {"code": 401, "message": "Invalid Credentials"}})
            body = call.json or {}
            return Reply(
                200,
                {
                    "kind": "calendar#freeBusy",
                    "timeMin": body.get("timeMin"),
                    "timeMax": body.get("timeMax"),
                    "calendars": {"primary": {"busy": self.busy}},
                },
            )
        return Reply(404, {"error": "not found"})

    def _bearer_ok(self, call: Call) -> bool:
        return (call.authorization or "").removeprefix("Bearer ") in self.access_tokens

    def settings(self, **overrides: Any) -> dict[str, Any]:
        """The service settings that point both providers at this server."""
        values: dict[str, Any] = {
            "todoist_client_id": CLIENT_ID,
            "todoist_client_secret": CLIENT_SECRET,
            "todoist_authorize_url": f"{self.url}/todoist/oauth/authorize",
            "todoist_token_url": f"{self.url}/todoist/oauth/access_token",
            "todoist_revoke_url": f"{self.url}/todoist/api/v1/access_tokens/revoke",
            "todoist_api_url": f"{self.url}/todoist/api/v1",
            "google_calendar_client_id": CLIENT_ID,
            "google_calendar_client_secret": CLIENT_SECRET,
            "google_calendar_authorize_url": f"{self.url}/google/auth",
            "google_calendar_token_url": f"{self.url}/google/token",
            "google_calendar_revoke_url": f"{self.url}/google/revoke",
            "google_calendar_api_url": f"{self.url}/google/calendar/v3",
        }
        values.update(overrides)
        return values


def s256(verifier: str) -> str:
    """RFC 7636's S256 code challenge of `verifier`."""
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def _handler(fake: FakeProviders) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out as separate writes

        def _serve(self, method: str) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            form: dict[str, str] = {}
            body: Any = None
            kind = self.headers.get("Content-Type", "")
            if raw and "json" in kind:
                body = json.loads(raw)
            elif raw:
                form = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            call = Call(method, parts.path, query, form, body, self.headers.get("Authorization"))
            send(self, fake.answer(call))

        def do_GET(self) -> None:
            self._serve("GET")

        def do_POST(self) -> None:
            self._serve("POST")

        def do_DELETE(self) -> None:
            self._serve("DELETE")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(name="providers")
def providers_fixture() -> Iterator[FakeProviders]:
    fake = FakeProviders(tasks=[todoist_task(f"81{i:04d}", f"Task number {i}") for i in range(3)])
    with serving(_handler(fake)) as url:
        fake.url = url
        yield fake
