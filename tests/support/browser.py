"""Driving the console in Debian's Chromium through Playwright, as a person would: shared by the
browser tests and the full-run log check. Playwright's own browser downloads are never used."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, expect, sync_playwright

CHROMIUM = "/usr/bin/chromium"
# How long a page may take to show what a test waits for: generous, since a loaded machine
# renders slowly and these guard against a page that never shows it, not a slow one. It applies
# to actions (the context's default) and to expect() assertions, whose own default is 5 s.
TIMEOUT_MS = 60_000
expect.set_options(timeout=TIMEOUT_MS)


@contextmanager
def chromium() -> Iterator[Browser]:
    assert Path(CHROMIUM).exists(), "Debian's chromium is needed: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def wait_until_run_finished(page: Page) -> None:
    """Streamlit marks its root with the script state; notRunning comes after the first run."""
    page.wait_for_selector('[data-testid="stApp"][data-test-connection-state="CONNECTED"]'
                           '[data-test-script-state="notRunning"]')
    expect(page.locator('[data-testid="stMainBlockContainer"]')).not_to_be_empty()


def sign_in(page: Page, *, console_url: str, issuer: str, person: str) -> None:
    """Open the console, press Sign in, pick `person` on the provider's login page, and land
    back on the console signed in."""
    page.goto(f"{console_url}/")
    wait_until_run_finished(page)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{issuer}/**")
    page.get_by_role("button", name=person, exact=True).click()
    page.wait_for_url(f"{console_url}/**")
    wait_until_run_finished(page)
    expect(page.get_by_text(f"role: {person.split('@')[0]}")).to_be_visible()
