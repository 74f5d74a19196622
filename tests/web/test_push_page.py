"""Notifications in a real headless Chromium, against a real server and the push-service stand-in.

Headless Chromium has no push service to subscribe with, so the page's
`PushManager.prototype.subscribe` is replaced (an init script) by one returning a subscription
whose endpoint is the stand-in and whose keys the test generated; everything else is the page's
own code. The service worker gets its push from Chromium itself (CDP
`ServiceWorker.deliverPushMessage`), with the payload the server really sent (decrypted by the
stand-in with the test's keys).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from notifier.outbox import PushMessage
from notifier.push import tip_url
from tests.conftest import LiveServer, wait_until
from tests.notifier.conftest import listed
from tests.notifier.push_service import Device, PushService, push_service  # noqa: F401
from tests.web.test_page import shown_tip

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["embedded"], indirect=True),
]

OpenPage = Callable[..., Page]


def fake_push_manager(device: Device) -> str:
    """An init script: `subscribe` answers with the stand-in's endpoint and the test's keys,
    and counts what the page asked (permission prompts, subscriptions with which key)."""
    subscription = json.dumps(device.subscription())
    return f"""
      (() => {{
        const json = {subscription};
        let current = null;
        window.__oo = {{ permissionAsked: 0, subscribedWith: [] }};
        const ask = Notification.requestPermission.bind(Notification);
        Notification.requestPermission = (...args) => {{
          window.__oo.permissionAsked += 1;
          return ask(...args);
        }};
        PushManager.prototype.subscribe = async function (options) {{
          const key = new Uint8Array(options.applicationServerKey);
          window.__oo.subscribedWith.push(btoa(String.fromCharCode(...key)));
          current = {{
            endpoint: json.endpoint,
            expirationTime: null,
            options: {{ userVisibleOnly: true, applicationServerKey: key.buffer }},
            toJSON: () => json,
            unsubscribe: async () => {{ current = null; return true; }},
          }};
          return current;
        }};
        PushManager.prototype.getSubscription = async function () {{ return current; }};
      }})();
    """


@pytest.fixture
def live(
    live_server: Callable[..., LiveServer],
    push_service: PushService,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> LiveServer:
    monkeypatch.setenv("OO_PUSH_SERVICE_HOSTS", listed(push_service))
    monkeypatch.setenv("OO_PUSH_POLL_SECONDS", "0.2")
    return live_server()


def _open(open_page: OpenPage, live: LiveServer, device: Device, *, granted: bool) -> Page:
    page = open_page(live)
    context: BrowserContext = page.context
    if granted:
        context.grant_permissions(["notifications"], origin=live.url)
    context.add_init_script(script=fake_push_manager(device))
    page.goto("/")
    return page


def _react(page: Page, times: int) -> None:
    event_id = shown_tip(page)
    for _ in range(times):
        page.keyboard.press("ArrowRight")
        event_id = shown_tip(page, other_than=event_id)


def _worker_ready(page: Page) -> None:
    page.evaluate("navigator.serviceWorker.ready.then(() => true)")


def test_notifications_are_offered_once_after_a_few_reactions_and_not_now_is_kept(
    open_page: OpenPage,
    live: LiveServer,
    push_service: PushService,  # noqa: F811
    screenshot: Callable[[Page, str], Path],
) -> None:
    page = _open(open_page, live, push_service.device("phone"), granted=False)
    offer = page.locator("#push-offer")
    _react(page, 2)
    _worker_ready(page)
    expect(offer).to_be_hidden()  # never on a first visit
    _react(page, 1)
    expect(offer).to_be_visible()
    expect(offer).to_contain_text("A tip when the moment fits?")
    screenshot(page, "push-offer")
    page.get_by_role("button", name="Not now").click()
    expect(offer).to_be_hidden()
    assert page.evaluate("window.__oo.permissionAsked") == 0  # only "turn on" asks

    page.reload()
    _react(page, 4)
    _worker_ready(page)
    expect(offer).to_be_hidden()  # "not now" holds for a long while
    assert page.evaluate("window.__oo") == {"permissionAsked": 0, "subscribedWith": []}
    assert live.services.push.subscriptions.devices("local") == []


def test_turning_on_subscribes_this_browser_and_a_test_push_arrives(
    open_page: OpenPage,
    live: LiveServer,
    push_service: PushService,  # noqa: F811
) -> None:
    page = _open(open_page, live, push_service.device("phone"), granted=True)
    _react(page, 3)
    expect(page.locator("#push-offer")).to_be_visible()
    page.get_by_role("button", name="Turn on").click()
    expect(page.locator("#push-offer")).to_be_hidden()
    (device,) = wait_until(lambda: live.services.push.subscriptions.devices("local"))
    assert device.service == "127.0.0.1"
    asked = page.evaluate("window.__oo")
    assert asked["permissionAsked"] == 1
    # It subscribed with the server's key.
    key = live.services.push.public_key()
    raw = key + "=" * (-len(key) % 4)
    assert asked["subscribedWith"] == [base64.b64encode(base64.urlsafe_b64decode(raw)).decode()]

    # The connections panel says so, and sends a test through the real notifier thread.
    page.get_by_role("button", name="Connections").click()
    row = page.locator('[data-provider="notifications"]')
    expect(row).to_have_attribute("data-status", "on")
    row.get_by_role("button", name="Send a test (notifications)").click()
    expect(page.locator("#connections-message")).to_contain_text("on its way to 1 device")
    wait_until(lambda: push_service.received)
    (test_push,) = push_service.received
    assert test_push.payload["body"] == "This is how a tip will arrive."
    assert push_service.refused == []


def _opened(live: LiveServer, event_id: str) -> bool:
    """Whether the server recorded an open of this push (read, not recorded, here)."""
    pushes = live.services.push.outbox.export("local")
    return any(p["event_id"] == event_id and p["opened_at"] for p in pushes)


def _registration_id(page: Page) -> tuple[Any, str]:
    cdp = page.context.new_cdp_session(page)
    found: list[str] = []

    def updated(event: dict[str, Any]) -> None:
        found.extend(r["registrationId"] for r in event["registrations"] if not r.get("isDeleted"))

    cdp.on("ServiceWorker.workerRegistrationUpdated", updated)
    cdp.send("ServiceWorker.enable")
    for _ in range(200):
        if found:
            return cdp, found[-1]
        page.wait_for_timeout(50)
    raise AssertionError("no service worker registration reported")


def test_a_pushed_tip_shows_as_a_notification_and_a_click_opens_exactly_it(
    open_page: OpenPage,
    live: LiveServer,
    push_service: PushService,  # noqa: F811
) -> None:
    phone = push_service.device("phone")
    page = _open(open_page, live, phone, granted=True)
    shown = shown_tip(page)
    _worker_ready(page)
    page.evaluate(
        """async () => {
            const registration = await navigator.serviceWorker.ready;
            const subscription = await registration.pushManager.subscribe({
                userVisibleOnly: true, applicationServerKey: new Uint8Array(65) });
            await fetch("/v1/push/subscriptions", { method: "POST",
                headers: { "content-type": "application/json" },
                body: JSON.stringify(subscription.toJSON()) });
        }"""
    )
    # A tip decided for later (as the timing surface will), pushed by the real notifier.
    services = live.services
    decided = page.evaluate(
        """async () => (await fetch("/v1/recommend", { method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ defer_activation: true }) })).json()"""
    )
    event_id = decided["event_id"]
    assert event_id != shown
    services.push.enqueue(
        "local",
        event_id,
        PushMessage(decided["tip"]["title"], decided["tip"]["body"], tip_url(event_id)),
    )
    wait_until(lambda: push_service.received)
    (sent,) = push_service.received
    assert sent.payload["event_id"] == event_id

    # Chromium delivers that payload to the service worker, which shows it.
    cdp, registration = _registration_id(page)
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": live.url, "registrationId": registration, "data": json.dumps(sent.payload)},
    )
    notifications = wait_until(
        lambda: page.evaluate(
            """async () => (await (await navigator.serviceWorker.ready).getNotifications())
                .map((n) => ({ title: n.title, body: n.body, tag: n.tag, data: n.data }))"""
        )
    )
    (notification,) = notifications
    assert notification["title"] == decided["tip"]["title"]
    assert notification["body"] == decided["tip"]["body"]
    assert notification["tag"] == "tip"
    assert notification["data"]["event_id"] == event_id

    # The same push again (sent again after a crash): it replaces, it does not stack.
    cdp.send(
        "ServiceWorker.deliverPushMessage",
        {"origin": live.url, "registrationId": registration, "data": json.dumps(sent.payload)},
    )
    page.wait_for_function(
        """async () => {
            const registration = await navigator.serviceWorker.ready;
            return (await registration.getNotifications()).length === 1;
        }"""
    )

    # A click on it: the page shows exactly that tip, activates it and records the open.
    (worker,) = page.context.service_workers
    worker.evaluate(
        """async () => {
            const [notification] = await self.registration.getNotifications();
            self.dispatchEvent(new NotificationEvent("notificationclick", { notification }));
        }"""
    )
    assert shown_tip(page, other_than=shown) == event_id
    expect(page.locator("#title")).to_have_text(decided["tip"]["title"])
    wait_until(lambda: services.store.get(event_id).decision.activated_at is not None)
    wait_until(lambda: _opened(live, event_id))
    cdp.detach()


def test_the_page_opens_on_the_tip_a_notification_names(
    open_page: OpenPage,
    live: LiveServer,
    push_service: PushService,  # noqa: F811
) -> None:
    # What `clients.openWindow` opens when no page is open: /?tip=<event id>.
    page = _open(open_page, live, push_service.device("phone"), granted=True)
    first = shown_tip(page)
    decided = page.evaluate(
        """async () => (await fetch("/v1/recommend", { method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ defer_activation: true }) })).json()"""
    )
    event_id = decided["event_id"]
    live.services.push.enqueue(
        "local", event_id, PushMessage(decided["tip"]["title"], url=tip_url(event_id))
    )
    page.goto(tip_url(event_id))
    assert shown_tip(page, other_than=first) == event_id
    assert page.evaluate("location.pathname + location.search") == "/"
    wait_until(lambda: live.services.store.get(event_id).decision.activated_at is not None)
    wait_until(lambda: _opened(live, event_id))
