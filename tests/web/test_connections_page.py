"""The page's quiet corner in headless Chromium: integration status and the device's timezone.

Todoist and Google are the local provider servers of tests/integrations/providers.py; the
integrations are connected through the app's own OAuth routes, and Google's access is revoked
at the fake provider so that a recommend finds it needs reconnecting.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import cast
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn
from playwright.sync_api import APIRequestContext, Page, Request, expect

from api.app import create_app
from integrations.vault import new_key_entry
from tests.conftest import Backend, LiveServer, fast_learner, free_port, wait_until
from tests.integrations.providers import (  # noqa: F401 - the fixture
    FakeProviders,
    providers_fixture,
)
from tests.oidc import provider as oidc

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["embedded"], indirect=True),
]

ZONE = "America/Sao_Paulo"
# A roomy provider deadline: these tests are about the page, not about giving up on a slow
# provider (tests/api/test_integrations.py covers that); a busy machine must not time them out.
ROOMY_DEADLINE_MS = 5000


def _connect(api: httpx.Client, providers: FakeProviders, provider: str) -> None:
    started = api.get(f"/v1/integrations/{provider}/connect")
    assert started.status_code == 302, started.text
    query = parse_qs(urlsplit(started.headers["location"]).query)
    done = api.get(
        f"/v1/integrations/{provider}/callback",
        params={
            "code": providers.code(query.get("code_challenge", [None])[0]),
            "state": query["state"][0],
        },
    )
    assert done.status_code == 302, done.text


def _tip(page: Page) -> None:
    page.wait_for_function(
        "() => document.body.dataset.state === 'tip' && document.getElementById('card')"
        ".dataset.eventId"
    )


def test_integration_status_disconnect_and_timezone(
    live_server: Callable[..., LiveServer],
    providers: FakeProviders,
    open_page: Callable[..., Page],
    screenshot: Callable[[Page, str], Path],
) -> None:
    live = live_server(
        vault_keys=new_key_entry("test"),
        **providers.settings(provider_deadline_ms=ROOMY_DEADLINE_MS),
    )
    services = live.services
    with httpx.Client(base_url=live.url, timeout=10) as api:
        api.patch("/v1/me", json={"kinds": ["advice", "todo"]}).raise_for_status()
        _connect(api, providers, "todoist")
        _connect(api, providers, "google-calendar")
        # The person revokes oO at Google: the next recommend finds it out.
        providers.access_tokens = {t for t in providers.access_tokens if t.startswith("todoist")}
        providers.refresh_tokens.clear()
        assert api.post("/v1/recommend").json()["missing_sources"] == ["google-calendar"]
    assert services.people.profile("local").timezone == "UTC"

    page = open_page(live, timezone_id=ZONE)
    patches: list[Request] = []
    page.on(
        "request",
        lambda request: (
            patches.append(request)
            if request.method == "PATCH" and request.url.endswith("/v1/me")
            else None
        ),
    )
    page.goto("/")
    _tip(page)

    # The device's zone replaced the default, once.
    wait_until(lambda: services.people.profile("local").timezone == ZONE)
    assert len(patches) == 1 and patches[0].post_data_json == {"timezone": ZONE}

    toggle = page.get_by_role("button", name="Connections, 1 needs reconnecting")
    expect(toggle).to_have_attribute("aria-expanded", "false")
    toggle.focus()
    page.keyboard.press("Enter")
    expect(toggle).to_have_attribute("aria-expanded", "true")
    panel = page.locator("#connections-panel")
    expect(panel).to_be_visible()
    todoist = panel.locator('[data-provider="todoist"]')
    calendar = panel.locator('[data-provider="google-calendar"]')
    expect(todoist.locator(".connection-state")).to_have_text("connected")
    expect(calendar.locator(".connection-state")).to_have_text("needs reconnect")
    reconnect = page.get_by_role("link", name="Reconnect Google Calendar")
    expect(reconnect).to_have_attribute("href", "/v1/integrations/google-calendar/connect")
    expect(page.get_by_role("button", name="Disconnect Todoist")).to_be_visible()
    screenshot(page, "connections-open")

    # Arrow keys inside the panel move nothing on the tip; Escape closes it, focus returns.
    shown = page.locator("#card").get_attribute("data-event-id")
    page.get_by_role("button", name="Disconnect Todoist").focus()
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(toggle).to_be_focused()
    assert page.locator("#card").get_attribute("data-event-id") == shown
    assert services.store.get(shown).reward is None

    page.keyboard.press("Enter")
    token = next(t for t in providers.issued if t.startswith("todoist"))
    page.get_by_role("button", name="Disconnect Todoist").click()
    expect(page.get_by_role("link", name="Connect Todoist")).to_be_focused()
    expect(page.locator("#connections-message")).to_have_text("Todoist disconnected.")
    assert token in providers.revoked
    statuses = {s.provider: s.status for s in services.integrations.statuses("local")}
    assert statuses == {"todoist": "not_connected", "google-calendar": "needs_reconnect"}
    screenshot(page, "connections-after-disconnect")

    # The person sets UTC on purpose: this device does not send its zone again.
    with httpx.Client(base_url=live.url, timeout=10) as api:
        api.patch("/v1/me", json={"timezone": "UTC"}).raise_for_status()
    page.reload()
    _tip(page)
    expect(page.locator("#connections")).to_be_visible()
    assert len(patches) == 1
    assert services.people.profile("local").timezone == "UTC"


@pytest.fixture
def signin_server(backend: Backend, providers: FakeProviders) -> Iterator[LiveServer]:
    """Sign-in mode (cookie sessions, CSRF) with both integrations pointed at the fakes."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # A generator (declared as an Iterator): closing it stops the provider.
    running = cast(Generator[oidc.OidcProvider], oidc.start([f"{url}/auth/callback/test"]))
    provider = next(running)
    signin = {
        "test": {
            "discovery_url": provider.discovery_url,
            "client_id": provider.client_id,
            "client_secret": provider.client_secret,
            "label": "Test ID",
        }
    }
    settings = backend.settings(
        port=port,
        public_url=url,
        oidc_providers=json.dumps(signin),
        token_keys=f"k1:{base64.b64encode(b's' * 32).decode()}",
        vault_keys=new_key_entry("test"),
        **providers.settings(provider_deadline_ms=ROOMY_DEADLINE_MS),
    )
    app = create_app(settings, fast_learner())
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, timeout=20)
        yield LiveServer(url, app, server, thread)
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        running.close()


def _connect_in_browser(request: APIRequestContext, providers: FakeProviders) -> None:
    """The OAuth round trip with the browser's own session cookie (the consent is the fake's)."""
    started = request.get("/v1/integrations/todoist/connect", max_redirects=0)
    assert started.status == 302, started.text()
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    done = request.get(
        "/v1/integrations/todoist/callback",
        params={"code": providers.code(), "state": state},
        max_redirects=0,
    )
    assert done.status == 302, done.text()


def test_disconnect_in_a_cookie_session_sends_the_csrf_header(
    signin_server: LiveServer, providers: FakeProviders, open_page: Callable[..., Page]
) -> None:
    page = open_page(signin_server)
    page.goto("/")
    page.get_by_role("link", name="Sign in with Test ID").click()
    page.locator('input[name="login"]').fill("ada")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{signin_server.url}/")
    _connect_in_browser(page.request, providers)
    person = signin_server.services.auth.store.find_person("ada@example.test")
    assert person is not None
    integrations = signin_server.services.integrations

    page.reload()
    deletes: list[Request] = []
    page.on("request", lambda r: deletes.append(r) if r.method == "DELETE" else None)
    page.get_by_role("button", name="Connections").click()
    page.get_by_role("button", name="Disconnect Todoist").click()
    expect(page.get_by_role("link", name="Connect Todoist")).to_be_visible()
    assert len(deletes) == 1 and deletes[0].headers.get("x-csrf-token")
    statuses = {s.provider: s.status for s in integrations.statuses(person.id)}
    assert statuses["todoist"] == "not_connected"
    assert providers.revoked  # revoked at Todoist, not only forgotten here
