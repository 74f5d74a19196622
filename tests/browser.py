"""A real headless Chromium (Debian's; Playwright's own download cannot work here) and helpers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, ViewportSize, sync_playwright

if TYPE_CHECKING:
    from tests.conftest import LiveServer


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PHONE: ViewportSize = {"width": 390, "height": 844}
DESKTOP: ViewportSize = {"width": 1440, "height": 900}
SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"


@pytest.fixture(scope="module")
def chromium() -> Iterator[Browser]:
    """One Chromium per test module, stopped when the module is done.

    Playwright's sync API keeps its event loop registered as the running loop of the main
    thread until it stops; held for the session, it made every later `asyncio.run` fail
    ("cannot be called from a running event loop") in whatever ran after a browser test.
    """
    if not CHROMIUM.exists():
        if os.environ.get("CI"):
            raise RuntimeError(f"{CHROMIUM} is missing; `make test` installs it")
        pytest.skip(f"{CHROMIUM} is not installed (`make test` installs it)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def open_page(chromium: Browser) -> Iterator[Callable[..., Page]]:
    """Open the black page of a live server in a fresh browser context (own storage, own SW).

    Fails the test on the page's own errors: uncaught exceptions and Content-Security-Policy
    refusals. (Other console errors are expected: failed requests while offline log some.)
    """
    contexts: list[BrowserContext] = []
    problems: list[str] = []

    def note(text: str) -> None:
        if "Content Security Policy" in text:
            problems.append(text)

    def open_(live: LiveServer, viewport: ViewportSize = PHONE, **options: Any) -> Page:
        context = chromium.new_context(
            base_url=live.url, viewport=viewport, device_scale_factor=2, **options
        )
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: problems.append(f"uncaught: {error}"))
        page.on("console", lambda message: note(message.text))
        return page

    yield open_
    for context in contexts:
        context.close()
    assert not problems, problems


@pytest.fixture
def screenshot() -> Callable[[Page, str], Path]:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), animations="disabled")
        return path

    return take
