"""The black page in a real headless Chromium against a real server (embedded backend).

Timings are printed, never asserted: first tip visible after navigation, and the next tip
visible after a swipe, both from `performance.mark`s the page sets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.conftest import LiveServer, wait_until
from tests.browser import DESKTOP, PHONE

pytestmark = [
    pytest.mark.browser,
    pytest.mark.parametrize("backend", ["embedded"], indirect=True),
]

POSITIVE = {"todo": "done", "advice": "useful"}
REWARDS = {"done": 1.0, "useful": 1.0, "later": 0.25, "dismiss": -0.5}

OpenPage = Callable[..., Page]
Screenshot = Callable[[Page, str], Path]


# --- helpers -------------------------------------------------------------------------------


def shown_tip(page: Page, other_than: str | None = None) -> str:
    """Wait for a tip on screen (another one than `other_than`); its event id."""
    page.wait_for_function(
        """(previous) => {
            const card = document.getElementById("card");
            return document.body.dataset.state === "tip" && !card.hidden
                && card.dataset.eventId && card.dataset.eventId !== previous;
        }""",
        arg=other_than,
    )
    event_id = page.locator("#card").get_attribute("data-event-id")
    assert event_id
    return event_id


def prefetched(page: Page) -> None:
    expect(page.locator("#deck")).to_have_attribute("data-prefetch", "ready")


def kind_of(page: Page) -> str:
    kind = page.locator("#card").get_attribute("data-kind")
    assert kind in POSITIVE
    return kind


def reward_of(live: LiveServer, event_id: str) -> tuple[float, str | None]:
    """Wait for the server to hold a reward for `event_id`."""
    logged = wait_until(lambda: _with_reward(live, event_id))
    return logged.reward, logged.reaction


def _with_reward(live: LiveServer, event_id: str) -> Any:
    logged = live.services.store.get(event_id)
    return logged if logged is not None and logged.reward is not None else None


def activated(live: LiveServer, event_id: str) -> bool:
    logged = live.services.store.get(event_id)
    return logged is not None and logged.decision.activated_at is not None


def marks(page: Page, name: str) -> list[float]:
    times: list[float] = page.evaluate(
        "(name) => performance.getEntriesByName(name).map((mark) => mark.startTime)", name
    )
    return times


@contextmanager
def printed(capsys: pytest.CaptureFixture[str]) -> Iterator[None]:
    with capsys.disabled():
        yield


def first_tip_ms(page: Page) -> float:
    return marks(page, "oo:tip")[0]


def swipe_to_next_ms(page: Page) -> float:
    return marks(page, "oo:tip")[-1] - marks(page, "oo:react")[-1]


def touch_swipe(page: Page, dx: float, dy: float = 0, steps: int = 10) -> None:
    """A finger on the tip, dragged by (dx, dy) and lifted: real touch events through CDP."""
    box = page.locator("#card").bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    cdp = page.context.new_cdp_session(page)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    for step in range(1, steps + 1):
        point = {"x": x + dx * step / steps, "y": y + dy * step / steps}
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})
    cdp.detach()


def card_centre(page: Page) -> tuple[float, float]:
    box = page.locator("#card").bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


# --- tests -----------------------------------------------------------------------------------


def test_touch_swipe_right_on_a_phone(
    live_server: Callable[..., LiveServer],
    open_page: OpenPage,
    screenshot: Screenshot,
    capsys: pytest.CaptureFixture[str],
) -> None:
    live = live_server()
    page = open_page(live, PHONE, has_touch=True, is_mobile=True)
    started = time.perf_counter()
    page.goto("/")
    first = shown_tip(page)
    seen_ms = (time.perf_counter() - started) * 1000
    title = page.locator("#title").inner_text()
    expect(page.locator("#announce")).to_contain_text(title)
    assert page.evaluate("document.body.scrollWidth") <= PHONE["width"]
    prefetched(page)

    page.get_by_role("button", name="Mood 4 of 5").tap()
    since = datetime.now(ZoneInfo("UTC")) - timedelta(minutes=5)
    mood = wait_until(lambda: live.services.people.latest_signals("local", since).get("mood"))
    assert mood.value == 4
    expect(page.get_by_role("button", name="Mood 4 of 5")).to_have_attribute("aria-pressed", "true")
    screenshot(page, "phone-tip")

    kind = kind_of(page)
    swiped = time.perf_counter()
    touch_swipe(page, dx=240)
    second = shown_tip(page, other_than=first)
    swipe_seen_ms = (time.perf_counter() - swiped) * 1000

    assert reward_of(live, first) == (1.0, POSITIVE[kind])
    # The second tip was prefetched: logged as deferred, activated once it was on screen.
    assert live.services.store.get(second).deferred
    wait_until(lambda: activated(live, second))

    with printed(capsys):
        print(
            f"\nweb timing (phone): first tip visible {first_tip_ms(page):.0f} ms after "
            f"navigation (test clock {seen_ms:.0f} ms); next tip visible "
            f"{swipe_to_next_ms(page):.0f} ms after the swipe (test clock {swipe_seen_ms:.0f} ms)"
        )


def test_mouse_swipe_and_keyboard_on_a_desktop(
    live_server: Callable[..., LiveServer],
    open_page: OpenPage,
    screenshot: Screenshot,
    capsys: pytest.CaptureFixture[str],
) -> None:
    live = live_server()
    page = open_page(live, DESKTOP)
    page.goto("/")
    first = shown_tip(page)
    prefetched(page)
    screenshot(page, "desktop-tip")

    # A short drag springs back: same tip, no reaction.
    x, y = card_centre(page)
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 40, y + 5, steps=4)
    page.wait_for_timeout(150)  # held still: no flick
    page.mouse.up()
    page.wait_for_function("() => document.getElementById('card').style.transform === ''")
    assert page.evaluate("document.body.dataset.state") == "tip"
    assert page.locator("#card").get_attribute("data-event-id") == first

    # A long one commits, and shows where it is going on the way.
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - 120, y + 10, steps=6)
    expect(page.locator(".hint-left")).not_to_have_css("opacity", "0")
    screenshot(page, "desktop-drag")
    page.mouse.move(x - 420, y + 20, steps=6)
    page.mouse.up()
    second = shown_tip(page, other_than=first)
    assert reward_of(live, first) == (-0.5, "dismiss")

    prefetched(page)
    page.keyboard.press("ArrowUp")
    third = shown_tip(page, other_than=second)
    assert reward_of(live, second) == (0.25, "later")
    keyboard_ms = swipe_to_next_ms(page)

    # The reactions are buttons too, out of sight until a keyboard reaches them.
    prefetched(page)
    positive = POSITIVE[kind_of(page)]
    button = page.get_by_role("button", name=positive.capitalize())
    button.focus()
    expect(button).to_be_visible()
    page.keyboard.press("Enter")
    shown_tip(page, other_than=third)
    assert reward_of(live, third) == (1.0, positive)

    with printed(capsys):
        print(
            f"\nweb timing (desktop): first tip visible {first_tip_ms(page):.0f} ms after "
            f"navigation; next tip visible {keyboard_ms:.0f} ms after an arrow key"
        )


def test_offline_reactions_wait_and_arrive(
    live_server: Callable[..., LiveServer], open_page: OpenPage, screenshot: Screenshot
) -> None:
    live = live_server()
    page = open_page(live, PHONE, reduced_motion="reduce")
    page.goto("/")
    first = shown_tip(page)
    prefetched(page)
    assert page.evaluate("navigator.serviceWorker.ready.then(() => true)")
    cdp = page.context.new_cdp_session(page)
    installability = cdp.send("Page.getInstallabilityErrors")["installabilityErrors"]
    # Playwright's contexts are incognito, where nothing installs; that is the only objection.
    assert [error["errorId"] for error in installability] in ([], ["in-incognito"])
    cdp.detach()
    kind = kind_of(page)

    page.context.set_offline(True)
    page.keyboard.press("ArrowRight")
    # The prefetched tip is already here, offline or not.
    second = shown_tip(page, other_than=first)
    expect(page.locator("#status")).to_have_text("offline · your swipes are saved")
    screenshot(page, "phone-offline")
    assert live.services.store.get(first).reward is None
    waiting = page.evaluate("JSON.parse(localStorage.getItem('oo.outbox')).map((r) => r.key)")
    assert waiting == [f"feedback:{first}", f"activate:{second}"]

    # The shell comes from the service worker; the last tip stays.
    reloaded = page.reload()
    assert reloaded is not None and reloaded.from_service_worker
    assert shown_tip(page) == second
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#notice-text")).to_have_text("You're offline.")

    page.context.set_offline(False)
    assert reward_of(live, first) == (1.0, POSITIVE[kind])
    assert reward_of(live, second) == (-0.5, "dismiss")
    assert activated(live, second)
    shown_tip(page, other_than=second)  # and a new tip once back
    expect(page.locator("#status")).to_have_text("")


def test_quiet_hours_say_when_the_next_tip_comes(
    live_server: Callable[..., LiveServer], open_page: OpenPage, screenshot: Screenshot
) -> None:
    live = live_server()
    zone = "Europe/Paris"
    now = datetime.now(ZoneInfo(zone))
    start, end = now - timedelta(hours=1), now + timedelta(hours=2)
    quiet = {"start": f"{start:%H:%M}", "end": f"{end:%H:%M}"}
    response = httpx.patch(f"{live.url}/v1/me", json={"timezone": zone, "quiet_hours": quiet})
    assert response.status_code == 200

    for viewport, name in ((PHONE, "phone-quiet"), (DESKTOP, "desktop-quiet")):
        page = open_page(live, viewport, locale="en-GB", timezone_id=zone)
        page.goto("/")
        expect(page.locator("#notice-text")).to_have_text(f"next tip at {end:%H:%M}")
        expect(page.locator("#card")).to_be_hidden()
        screenshot(page, name)


def test_errors_say_what_to_do(live_server: Callable[..., LiveServer], open_page: OpenPage) -> None:
    live = live_server()
    # Routing sees requests only while no service worker answers them.
    page = open_page(live, PHONE, service_workers="block")
    failure = {"error": {"code": "ServiceUnavailable", "message": "the model is loading"}}
    page.route("**/v1/recommend", lambda route: route.fulfill(status=503, json=failure))
    page.goto("/")
    expect(page.locator("#notice-text")).to_have_text(
        "Something went wrong while choosing your tip."
    )
    expect(page.locator("#notice-detail")).to_contain_text("the model is loading")
    page.unroute("**/v1/recommend")
    page.get_by_role("button", name="Try again").click()
    shown_tip(page)
