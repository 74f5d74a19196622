"""The black page in sign-in mode, in headless Chromium: signed out it offers the provider, the
real OpenID provider signs the person in, swipes reach the server with the CSRF header, and
signing out ends the session."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Page, expect

from api.app import create_app
from api.auth.signin import SESSION_COOKIE
from bandit.store import LoggedDecision
from tests.conftest import Backend, LiveServer, fast_learner, free_port, wait_until
from tests.oidc import provider as oidc

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["embedded"], indirect=True),
]


@pytest.fixture
def signin_server(backend: Backend) -> Iterator[LiveServer]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    running = oidc.start([f"{url}/auth/callback/test"])
    provider = next(running)
    providers = {
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
        oidc_providers=json.dumps(providers),
        token_keys=f"k1:{base64.b64encode(b's' * 32).decode()}",
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


def test_sign_in_swipe_and_sign_out(
    signin_server: LiveServer,
    open_page: Callable[..., Page],
    screenshot: Callable[[Page, str], Path],
) -> None:
    page = open_page(signin_server)
    page.goto("/")
    expect(page.locator("#notice-text")).to_have_text("Sign in to get your tips.")
    link = page.get_by_role("link", name="Sign in with Test ID")
    expect(link).to_be_visible()
    screenshot(page, "signin-signed-out")

    link.click()
    page.locator('input[name="login"]').fill("ada")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{signin_server.url}/")
    page.wait_for_function(
        "() => document.body.dataset.state === 'tip' && document.getElementById('card')"
        ".dataset.eventId"
    )
    event_id = page.locator("#card").get_attribute("data-event-id")
    assert event_id
    cookies = {c["name"]: c for c in page.context.cookies()}
    assert cookies[SESSION_COOKIE]["httpOnly"] and cookies[SESSION_COOKIE]["sameSite"] == "Lax"
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()

    # A swipe is a cookie-authenticated POST: it only lands with the CSRF header.
    page.keyboard.press("ArrowUp")
    store = signin_server.services.store
    logged = wait_until(lambda: _rewarded(store.get(event_id)))
    assert logged.reaction == "later"
    person = signin_server.services.auth.store.find_person("ada@example.test")
    assert person is not None and logged.decision.principal == person.id

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("link", name="Sign in with Test ID")).to_be_visible()
    auth = signin_server.services.auth
    assert auth.store.session_person(cookies[SESSION_COOKIE]["value"]) is None


def _rewarded(logged: LoggedDecision | None) -> LoggedDecision | None:
    return logged if logged is not None and logged.reward is not None else None
