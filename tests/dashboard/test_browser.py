"""The console in a real browser: `python -m dashboard` as a subprocess, driven by headless
Chromium, signing people in through the local OIDC provider's own login page.

AppTest (test_pages_live.py) runs the scripts without a browser; this checks what a person sees:
before sign-in, a page with a sign-in button and no data; after it, each page loads over the
websocket, finishes running, shows its heading and data, draws its charts, and shows no exception
and no error banner except the one naming the alerts API (not part of the stack yet); the pages
and buttons follow the person's role, and signing out ends it. Chromium is Debian's
(`/usr/bin/chromium`, installed by `make test`), driven by Playwright's Python package;
Playwright's own browser downloads are never used.

A full-page screenshot of each page goes to test-output/screenshots/ for review; the terminal
summary prints where.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from devstack.processes import Console
from devstack.servers import wait_for
from devstack.stack import CONSOLE_CLIENT_ID
from tests.dashboard.conftest import (
    ADMIN,
    ADMIN_PERSON,
    INSTANCES,
    KNOWN_ORG_NAME,
    MINUTES,
    SCREENSHOT_DIR,
    SCREENSHOTS,
    SUPPORT,
    VIEWER,
    KnownOrgStack,
)
from tests.support.browser import TIMEOUT_MS, chromium, sign_in, wait_until_run_finished

# One worker runs the whole module, so its module-scoped stack is started once.
pytestmark = [pytest.mark.processes, pytest.mark.xdist_group("test_browser")]

# url path (from the st.Page definitions in dashboard/app.py), title, text shown once data is
# in, and the charts the page always draws with this stack's data.
PAGES = [
    ("", "Overview", "Availability, 30 d (objective 99.9 %)", 1),  # burn rate per window
    ("errors", "Errors and latency", "Slowest endpoints (p95)", 2),  # rates, status codes...
    ("alerts", "Alerts", "Watchdog", 0),
    ("oncall", "On call", "alerts API unreachable", 0),  # this stack runs no alerts process
    ("incidents", "Incidents", "alerts API unreachable", 0),
    ("customers", "Customers", "Type the start of an org id, a name or a billing email.", 0),
    ("usage", "Usage and payments", "Heartbeat ingest", 0),
    ("runbooks", "Runbooks", "What to do when something breaks", 0),  # the README index
]


class LiveConsole:
    def __init__(self, url: str, stack: KnownOrgStack, config: pytest.Config) -> None:
        self.url, self.stack, self.config = url, stack, config


@pytest.fixture(scope="module")
def console(stack: KnownOrgStack, request: pytest.FixtureRequest) -> Iterator[LiveConsole]:
    """`python -m dashboard` on a free port, pointed at the stack's backends and provider."""
    process = Console(engine_url=stack.engine.url, prometheus_url=stack.prometheus.url,
                      alerts_url=stack.alerts_url,
                      oidc_env={"OIDC_ISSUER_URL": stack.oidc.issuer,
                                "OIDC_CLIENT_ID": CONSOLE_CLIENT_ID})
    try:
        process.start()
        yield LiveConsole(process.url, stack, request.config)
    finally:
        process.stop()
        if process.log_path is not None:
            process.log_path.unlink(missing_ok=True)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with chromium() as started:
        yield started


@pytest.fixture(scope="module")
def signed_in_states(browser: Browser, console: LiveConsole) -> dict[str, Any]:
    """Each person signs in once through the provider; tests reuse their cookies."""
    return {}


@pytest.fixture
def new_tab(browser: Browser, console: LiveConsole,
            signed_in_states: dict[str, Any]) -> Iterator[Callable[[str | None], Page]]:
    """A tab in a fresh browser context, signed in as the person given (None: nobody)."""
    contexts: list[tuple[BrowserContext, list[str]]] = []

    def open_tab(person: str | None) -> Page:
        state = signed_in_states.get(person) if person else None
        context = browser.new_context(viewport={"width": 1400, "height": 900},
                                      storage_state=state)
        context.set_default_timeout(TIMEOUT_MS)
        tab = context.new_page()
        crashes: list[str] = []
        tab.on("pageerror", lambda error: crashes.append(str(error)))
        contexts.append((context, crashes))
        if person and state is None:
            sign_in(tab, console_url=console.url, issuer=console.stack.oidc.issuer,
                    person=person)
            signed_in_states[person] = context.storage_state()
        return tab

    yield open_tab
    for context, crashes in contexts:
        context.close()
        assert not crashes, f"uncaught JavaScript errors in the page: {crashes}"


@pytest.fixture
def page(new_tab: Callable[[str | None], Page]) -> Page:
    """A support agent's tab: every page of the console but the admin actions."""
    return new_tab(SUPPORT)


def assert_no_errors(page: Page, console: LiveConsole) -> list[str]:
    """No exception box, and no error banner but the alerts API's; returns the banners."""
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, exceptions.all_inner_texts()
    # The alerts process is not in the stack: its banner (naming it and its URL) is expected.
    banners = page.locator('[data-testid="stAlertContentError"]').all_inner_texts()
    unexpected = [b for b in banners
                  if not ("alerts API unreachable" in b and console.stack.alerts_url in b)]
    assert not unexpected, unexpected
    return banners


def alerts_api_down(console: LiveConsole) -> bool:
    try:
        httpx.get(f"{console.stack.alerts_url}/healthz", timeout=2)
    except httpx.ConnectError:
        return True
    return False


def assert_charts_drawn(page: Page, *, at_least: int) -> None:
    """Each Plotly chart on the page is drawn with at least one trace (no blank frame)."""
    charts = page.locator('[data-testid="stPlotlyChart"]')
    if at_least:
        expect(charts.nth(at_least - 1)).to_be_attached()  # waits for the charts to arrive
    for chart in charts.all():
        plot = chart.locator(".js-plotly-plot")
        expect(plot.locator(".main-svg").first).to_be_visible()
        traces = plot.evaluate("graph => (graph._fullData || []).length")
        assert traces > 0, "a chart with no trace"


def screenshot(page: Page, console: LiveConsole, name: str) -> Path:
    """The whole page: the viewport grows to the content, which scrolls inside Streamlit's main."""
    height = page.evaluate(
        "() => Math.max(document.body.scrollHeight, "
        "document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight || 0)")
    page.set_viewport_size({"width": 1400, "height": min(max(int(height) + 40, 900), 8000)})
    page.wait_for_timeout(300)  # Plotly re-lays out on resize
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOT_DIR / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    console.config.stash.setdefault(SCREENSHOTS, []).append(path)
    print(f"screenshot: {path}")
    return path


def open_page(page: Page, console: LiveConsole, path: str) -> None:
    page.goto(f"{console.url}/{path}")
    wait_until_run_finished(page)


@pytest.mark.parametrize(("path", "title", "text", "charts"), PAGES, ids=[p[1] for p in PAGES])
def test_every_page_loads_in_chromium_without_errors(page, console, path, title, text, charts):
    if path == "alerts":
        wait_for(lambda: console.stack.prometheus.query('ALERTS{alertname="Watchdog"}'),
                 timeout=30, what="the Watchdog alert")
    open_page(page, console, path)
    # The page's st.title (a runbook may open with the same words as its own heading).
    expect(page.get_by_test_id("stHeading").get_by_role("heading", name=title, exact=True)
           ).to_be_visible()
    expect(page.get_by_text(text, exact=False).first).to_be_visible()
    banners = assert_no_errors(page, console)
    if path in ("", "alerts") and alerts_api_down(console):  # they ask it, so they name it
        assert banners, "no banner for the unreachable alerts API"
    assert_charts_drawn(page, at_least=charts)
    screenshot(page, console, path or "overview")


def test_customer_search_shows_the_billing_card(page, console):
    open_page(page, console, "customers")
    search = page.get_by_label("Search by org id, name or billing email")
    search.fill("Console Test")
    search.press("Enter")
    expect(page.get_by_text("Estimated total")).to_be_visible()
    wait_until_run_finished(page)
    metrics = {
        m.locator('[data-testid="stMetricLabel"]').inner_text().strip():
        m.locator('[data-testid="stMetricValue"]').inner_text().strip()
        for m in page.locator('[data-testid="stMetric"]').all()}
    used = INSTANCES * MINUTES / 60
    assert metrics["Used"] == f"{used:.2f} h", metrics
    assert metrics["Included"] == "100.00 h", metrics
    assert metrics["Estimated total"] == "$20.00", metrics
    expect(page.get_by_role("heading", name=f"{KNOWN_ORG_NAME} ({console.stack.org_id})")
           ).to_be_visible()
    assert_no_errors(page, console)
    assert_charts_drawn(page, at_least=2)  # the hours gauge and the daily usage bars
    screenshot(page, console, "customers-card")


def test_runbook_deep_link_opens_at_its_section(page, console):
    open_page(page, console, "runbooks?runbook=slo&section=billingavailabilityfastburn")
    expect(page.get_by_role("heading", name="BillingAvailabilityFastBurn", exact=True)
           ).to_be_visible()
    expect(page.get_by_text("Section BillingAvailabilityFastBurn of the slo runbook")
           ).to_be_visible()
    assert_no_errors(page, console)
    screenshot(page, console, "runbooks-slo-fast-burn")


def test_alert_runbook_link_lands_on_the_runbook_section(page, console):
    wait_for(lambda: console.stack.prometheus.query('ALERTS{alertname="Watchdog"}'),
             timeout=30, what="the Watchdog alert")
    open_page(page, console, "alerts")
    # The card of the Watchdog alert: the nearest ancestor of its name holding a runbook link.
    name = page.locator("strong", has_text="Watchdog").first
    link = name.locator("xpath=ancestor::*[.//a[text()='Runbook section']][1]"
                        "//a[text()='Runbook section']")
    expect(link).to_have_count(1)
    with page.context.expect_page() as opened:
        link.click()
    runbook = opened.value
    wait_until_run_finished(runbook)
    assert runbook.url.startswith(f"{console.url}/runbooks?runbook=alerting&section=watchdog")
    expect(runbook.get_by_role("heading", name="Watchdog", exact=True)).to_be_visible()
    assert_no_errors(runbook, console)


# What an attacker who controls an org's name or a link's parameters would try: an image that
# calls home, a link, a heading, HTML, Streamlit's colour directive.
HOSTILE = "![x](http://evil.invalid/x.png) [click](http://evil.invalid/) <b>bold</b> :red[red]"


def no_hostile_markup(page: Page) -> None:
    main = page.locator('[data-testid="stMain"]')
    assert main.locator('img[src*="evil"]').count() == 0
    # Streamlit gives each heading an anchor (href="#...") made from its words: not a link out.
    links = [a.get_attribute("href") or "" for a in main.locator("a").all()]
    assert [href for href in links if "evil" in href and not href.startswith("#")] == [], links
    assert main.locator("b", has_text="bold").count() == 0


def test_text_a_customer_controls_is_shown_as_text(page, console):
    org = "org_hostile_name"
    answer = httpx.put(f"{console.stack.engine.url}/admin/orgs/{org}",
                       headers={"X-Admin-Key": ADMIN},
                       json={"name": HOSTILE, "email": "ops_*bold*_@evil.invalid",
                             "plan": "base_usage"})
    assert answer.status_code in (200, 201), answer.text
    open_page(page, console, "customers")
    search = page.get_by_label("Search by org id, name or billing email")
    search.fill(org)
    search.press("Enter")
    expect(page.get_by_role("heading", name=f"{HOSTILE} ({org})")).to_be_visible()
    wait_until_run_finished(page)
    expect(page.get_by_text("Billing email ops_*bold*_@evil.invalid")).to_be_visible()
    no_hostile_markup(page)


def test_a_crafted_runbook_link_is_echoed_as_text(page, console):
    page.goto(f"{console.url}/runbooks?runbook={quote(HOSTILE)}")
    wait_until_run_finished(page)
    expect(page.get_by_text(f"No runbook named “{HOSTILE}”")).to_be_visible()
    no_hostile_markup(page)


# -- sign-in and roles ----------------------------------------------------------------------------

def customer_data(console: LiveConsole) -> list[str]:
    org = console.stack.org_id
    return [KNOWN_ORG_NAME, org, f"{org}@example.com"]


def test_before_sign_in_the_console_serves_only_the_sign_in_page(new_tab, console):
    tab = new_tab(None)
    for path in ("", "customers", f"customers?q={console.stack.org_id}", "alerts"):
        open_page(tab, console, path)
        expect(tab.get_by_role("button", name="Sign in")).to_be_visible()
        html = tab.content()
        assert [text for text in customer_data(console) if text in html] == []
        assert tab.locator('[data-testid="stMetric"]').count() == 0
        assert tab.get_by_label("Search by org id, name or billing email").count() == 0
        assert tab.locator('[data-testid="stSidebarNav"]').count() == 0


def test_a_viewer_is_not_offered_customers_and_cannot_open_them(new_tab, console):
    tab = new_tab(VIEWER)
    nav = tab.locator('[data-testid="stSidebarNav"]')
    expect(nav.get_by_text("Overview")).to_be_visible()
    assert nav.get_by_text("Customers").count() == 0
    open_page(tab, console, "customers")
    assert tab.get_by_label("Search by org id, name or billing email").count() == 0
    assert [text for text in customer_data(console) if text in tab.content()] == []


def _open_card(tab: Page, console: LiveConsole) -> None:
    open_page(tab, console, "customers")
    search = tab.get_by_label("Search by org id, name or billing email")
    search.fill(console.stack.org_id)
    search.press("Enter")
    expect(tab.get_by_text("Estimated total")).to_be_visible()
    wait_until_run_finished(tab)


def test_admin_actions_appear_only_for_an_admin(new_tab, console):
    support = new_tab(SUPPORT)
    _open_card(support, console)
    expect(support.get_by_text("Read-only")).to_be_visible()
    assert support.get_by_role("button", name="Grant credit").count() == 0
    admin = new_tab(ADMIN_PERSON)
    _open_card(admin, console)
    expect(admin.get_by_role("button", name="Grant credit")).to_be_visible()
    expect(admin.get_by_role("button", name="Refresh quota (rebuild rollups from raw minutes)")
           ).to_be_visible()
    screenshot(admin, console, "customers-card-admin")


def test_signing_out_ends_the_session(new_tab, console):
    tab = new_tab(SUPPORT)
    open_page(tab, console, "")
    tab.locator('[data-testid="stSidebar"]').get_by_role("button", name="Sign out").click()
    # The provider is told too (its end-session page); the console's cookie is gone already.
    tab.wait_for_url(f"{console.stack.oidc.issuer}/**")
    open_page(tab, console, "customers")
    expect(tab.get_by_role("button", name="Sign in")).to_be_visible()
    assert [text for text in customer_data(console) if text in tab.content()] == []
