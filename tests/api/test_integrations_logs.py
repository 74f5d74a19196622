"""No token, client secret or authorization code reaches a log line, access log included.

A real uvicorn server (access log on, DEBUG everywhere) runs a whole connect → refresh →
recommend → disconnect cycle for both providers; every record is then searched for the secrets.
"""

from __future__ import annotations

import http.client
import json
import logging
import threading
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import uvicorn

from api.app import create_app
from integrations.vault import new_key_entry
from tests.conftest import Backend, fast_learner, free_port, wait_until
from tests.integrations.providers import (  # noqa: F401 - the fixture
    CLIENT_SECRET,
    FakeProviders,
    providers_fixture,
)


class Browser:
    """The person's browser, on the standard library: it logs nothing, so every record
    captured below is the service's (or the fake providers')."""

    def __init__(self, port: int) -> None:
        self.port = port

    def send(
        self, method: str, path: str, params: dict[str, str] | None = None, body: Any = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            target = path + ("?" + urlencode(params) if params else "")
            payload = json.dumps(body).encode() if body is not None else None
            headers = {"Content-Type": "application/json"} if payload else {}
            connection.request(method, target, body=payload, headers=headers)
            response = connection.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        finally:
            connection.close()


def _cycle(browser: Browser, providers: FakeProviders, codes: list[str]) -> None:
    browser.send("PATCH", "/v1/me", body={"kinds": ["advice", "todo"]})
    for provider in ("todoist", "google-calendar"):
        _, headers, _ = browser.send("GET", f"/v1/integrations/{provider}/connect")
        query = parse_qs(urlsplit(headers["location"]).query)
        state = query["state"][0]
        code = providers.code(query.get("code_challenge", [None])[0])
        codes += [code, state]
        status, _, text = browser.send(
            "GET", f"/v1/integrations/{provider}/callback", {"code": code, "state": state}
        )
        assert status == 302, text
    # A replayed code and state: the refusal must not echo them either.
    status, _, text = browser.send(
        "GET", "/v1/integrations/todoist/callback", {"code": codes[0], "state": codes[1]}
    )
    assert status == 400 and codes[0].encode() not in text and codes[1].encode() not in text
    for _ in range(3):
        status, _, text = browser.send("POST", "/v1/recommend")
        assert status == 200, text
        assert json.loads(text)["missing_sources"] == []
    providers.access_tokens.clear()  # revoked at the providers: 401s, refresh refused
    providers.refresh_tokens.clear()
    assert browser.send("POST", "/v1/recommend")[0] == 200
    for provider in ("todoist", "google-calendar"):
        assert browser.send("DELETE", f"/v1/integrations/{provider}")[0] == 204


def test_no_secret_in_any_log_record(
    backend: Backend, providers: FakeProviders, caplog: pytest.LogCaptureFixture
) -> None:
    providers.google_expires_in = 30  # every recommend refreshes the Google token
    caplog.set_level(logging.DEBUG)
    port = free_port()
    settings: dict[str, Any] = providers.settings(
        vault_keys=new_key_entry("test"), provider_deadline_ms=2000
    )
    app = create_app(backend.settings(port=port, **settings), fast_learner())
    # log_config=None: uvicorn's loggers (access log included) propagate to caplog.
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, log_level="debug", access_log=True
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    codes: list[str] = []
    try:
        wait_until(lambda: server.started, timeout=20)
        _cycle(Browser(port), providers, codes)
    finally:
        server.should_exit = True
        thread.join(timeout=15)

    secrets = [CLIENT_SECRET, *providers.issued, *codes]
    assert len(providers.issued) >= 4 and len(codes) == 4
    records = caplog.records
    lines = [record.getMessage() for record in records]
    lines += [str(record.args) for record in records if record.args]
    assert any(record.name == "uvicorn.access" for record in records)
    assert any("/v1/integrations/todoist/callback" in line for line in lines)
    for secret in secrets:
        leaked = [line for line in lines if secret in line]
        assert not leaked, f"a secret appears in {len(leaked)} log lines: {leaked[:1]}"
