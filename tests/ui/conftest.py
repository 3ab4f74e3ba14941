"""Fixtures for the browser tests: one chromium per session, a fresh page per test with the
page's console errors collected (a JS error fails the test that caused it)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from uibrowser import CHROMIUM, CHROMIUM_ARGS


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/ui/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.ui)


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (Debian package chromium; make deps)")
    from playwright.sync_api import sync_playwright

    # Playwright gives every launch a fresh temporary profile (--user-data-dir) of its own.
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


class PageErrors(list):
    """JS exceptions and console errors of one page."""


@pytest.fixture
def page(browser) -> Iterator:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    pg = context.new_page()
    errors = PageErrors()
    pg.on("pageerror", lambda exc: errors.append(f"pageerror: {exc}"))
    def on_console(msg) -> None:
        # Chromium logs every 4xx answer as "Failed to load resource": those are the API
        # saying no (tests check what the page does with it), not script errors.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            errors.append(f"console: {msg.text}")

    pg.on("console", on_console)
    pg.js_errors = errors  # type: ignore[attr-defined]
    try:
        yield pg
    finally:
        context.close()
