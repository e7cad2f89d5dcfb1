"""Headless Chromium (the OS package) driven by Playwright for the tests that need a real browser.

Playwright cannot download its own browser here, so it launches /usr/bin/chromium (or what CHROMIUM names);
when either is missing the tests skip with the reason. Every request the page makes is recorded;
file:// and 127.0.0.1 go on, anything else is aborted and recorded, so a test can assert that
nothing left the machine.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def chromium_path() -> str | None:
    """CHROMIUM=/path picks the browser; CHROMIUM=none runs as if there were none (to see the skip)."""
    if os.environ.get("CHROMIUM") == "none":
        return None
    for candidate in (
        os.environ.get("CHROMIUM"),
        "/usr/bin/chromium",
        shutil.which("chromium"),
        shutil.which("chromium-browser"),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def launch_or_skip():
    """(playwright, browser); skips the calling module when Playwright or Chromium cannot be had."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium (apt-get install chromium, or make test-deps)")
    playwright = sync_playwright().start()
    try:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS, timeout=60_000)
    except Exception as exc:  # a browser that will not start here: skip, naming why
        playwright.stop()
        pytest.skip(f"Chromium at {path} does not start: {str(exc).splitlines()[0]}")
    return playwright, browser


def is_local(url: str) -> bool:
    return url.startswith(("file://", "data:", "about:", "http://127.0.0.1", "http://localhost"))


class Page:
    """One page with every request recorded, non-local ones aborted, and console errors kept."""

    def __init__(self, browser, width: int = 1280, height: int = 700):
        self.context = browser.new_context(viewport={"width": width, "height": height})
        self.requests: list[str] = []
        self.blocked: list[str] = []
        self.console_errors: list[str] = []
        self.context.route("**/*", self._route)
        self.context.on("request", lambda request: self.requests.append(request.url))
        self.page = self.context.new_page()
        self.page.on("console", lambda m: self.console_errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda exc: self.console_errors.append(str(exc)))

    def _route(self, route) -> None:
        url = route.request.url
        if is_local(url):
            route.continue_()
        else:
            self.blocked.append(url)
            route.abort()

    def open(self, path: Path):
        self.page.goto(path.resolve().as_uri(), wait_until="load", timeout=30_000)
        return self.page

    def close(self) -> None:
        self.context.close()
