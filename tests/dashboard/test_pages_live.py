"""Every console page against a real engine and a real Prometheus (AppTest, no browser).

Multipage: AppTest.from_file runs dashboard/app.py (which declares st.navigation) and
AppTest.switch_page picks the page, so each test goes through the real entry point and its
settings. The `stack` fixture (conftest.py) starts the engine and Prometheus but no alerts
process: ALERTS_URL points at a free port, so these tests also show that every page copes with
the alerts API being down (the Alerts page says so and falls back to Prometheus' own alerts).
test_alerts_page_live.py and test_pages_billing_live.py run the real alerts process.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from dashboard.settings import ConsoleSettings
from dashboard.signin import person_from_claims
from devstack.servers import wait_for
from tests.dashboard.conftest import (
    ADMIN,
    ADMIN_PERSON,
    KNOWN_ORG_NAME,
    OPERATOR,
    SUPPORT,
    VIEWER,
    KnownOrgStack,
)

# One worker runs the whole module, so its module-scoped stack is started once.
pytestmark = [pytest.mark.processes, pytest.mark.xdist_group("test_pages_live")]

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")


@pytest.fixture(scope="module")
def people(stack: KnownOrgStack) -> dict[str, dict[str, object]]:
    """Each demo person as signed in through the stack's provider."""
    return {sub: stack.stack.console_user(sub) for sub in (VIEWER, SUPPORT, OPERATOR,
                                                             ADMIN_PERSON)}


@pytest.fixture
def console(stack: KnownOrgStack, people: dict[str, dict[str, object]],
            monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    for name, value in stack.stack.console_environ().items():
        monkeypatch.setenv(name, value)
    st.cache_data.clear()

    def open_page(page: str, *, person: str = SUPPORT) -> AppTest:
        app = AppTest.from_file(APP, default_timeout=30)
        app.user = dict(people[person])
        app.run()
        if page != "views/overview.py":
            app.switch_page(page)
            app.run()
        assert not app.exception, [e.value for e in app.exception]
        return app

    return open_page


def _errors(app: AppTest) -> list[str]:
    return [e.value for e in app.error]


def _metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def _search(app: AppTest, query: str) -> AppTest:
    app.text_input(key="customer_query").input(query).run()
    assert not app.exception, [e.value for e in app.exception]
    return app


def test_overview_shows_availability_budget_and_burn_rates(console):
    app = console("views/overview.py")
    assert _errors(app) == [e for e in _errors(app) if "alerts API" in e]
    metrics = _metrics(app)
    assert metrics["Availability, 30 d (objective 99.9 %)"].endswith("%")
    assert metrics["Error budget remaining"].endswith("%")
    assert metrics["Request rate, 5 m"].endswith("req/s")
    # Burn rates as a chart; with nothing firing but the Watchdog, alerts are said in words.
    assert len(app.get("plotly_chart")) == 1
    assert any("No alert is firing" in s.value for s in app.success)


def test_errors_and_latency_page_draws_from_prometheus(console):
    app = console("views/errors_latency.py")
    assert not _errors(app)
    assert app.selectbox[0].value == "1 hour"
    assert app.get("plotly_chart"), "request rate, status codes and latency charts"


def test_alerts_page_names_the_unreachable_alerts_api_and_falls_back_to_prometheus(
        console, stack):
    wait_for(lambda: stack.prometheus.query('ALERTS{alertname="Watchdog"}'), timeout=30,
             what="the Watchdog alert")
    app = console("views/alerts.py")
    assert any("alerts API unreachable" in e and stack.alerts_url in e for e in _errors(app))
    text = " ".join(m.value for m in app.markdown)
    assert "Watchdog" in text
    assert "/runbooks?runbook=alerting&section=watchdog" in text


def test_customer_card_shows_the_known_orgs_numbers(console, stack):
    app = _search(console("views/customers.py"), "Console Test")
    # This stack has no alerts process: only its banner (budget alerts sent) may show.
    assert [e for e in _errors(app) if "alerts API" not in e] == []
    metrics = _metrics(app)
    assert metrics["Included"] == "100.00 h"
    assert metrics["Used"] == "2.00 h"
    assert metrics["Remaining"] == "98.00 h"
    assert metrics["Overage"] == "0.00 h"
    assert metrics["Base fee"] == "$20.00"
    assert metrics["Estimated overage"] == "$0.00"
    assert metrics["Estimated total"] == "$20.00"
    assert any(stack.org_id in c.value and "base_usage" in c.value for c in app.caption)
    assert len(app.get("plotly_chart")) == 2  # the gauge and the daily usage bars
    entitlements = " ".join(m.value for m in app.markdown)
    assert "Subscription **active**" in entitlements
    assert "20 concurrent instances" in entitlements and "overage allowed" in entitlements


def test_repairs_are_offered_from_the_operator_role_and_run_as_that_person(console, stack):
    app = _search(console("views/customers.py", person=SUPPORT), stack.org_id)
    assert not [b for b in app.button if b.key == "refresh_quota"]
    assert any("Read-only" in i.value for i in app.info)

    app = _search(console("views/customers.py", person=OPERATOR), stack.org_id)
    assert not [f for f in app.get("form") if "grant_credit" in str(f.proto.form_id)]
    app.button(key="refresh_quota").click().run()
    assert any("Quota refreshed" in s.value for s in app.success), _errors(app)
    audit = httpx.get(f"{stack.engine.url}/admin/audit", headers={"X-Admin-Key": ADMIN},
                      params={"org_id": stack.org_id}).json()
    refresh = next(e for e in audit if e["path"].endswith("/refresh"))
    assert (refresh["actor"], refresh["outcome"]) == (OPERATOR, "succeeded")  # the person


def test_before_sign_in_only_the_sign_in_page_is_served(console, stack):
    app = AppTest.from_file(APP, default_timeout=30)
    app.user = {"is_logged_in": False}
    app.switch_page("views/customers.py").run()
    assert not app.exception
    assert [b.label for b in app.button] == ["Sign in"]
    assert not app.metric and not app.get("plotly_chart") and not app.text_input
    assert KNOWN_ORG_NAME not in str(app)


def test_a_viewer_gets_no_customer_page_and_no_customer_data(console, stack, people):
    app = console("views/overview.py", person=VIEWER)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        app.switch_page("views/customers.py")  # not in a viewer's navigation
    usage = console("views/usage_payments.py", person=VIEWER)
    assert not [h for h in usage.subheader if "Top orgs" in h.value]
    assert KNOWN_ORG_NAME not in str(usage) and stack.org_id not in str(usage)
    # The page itself refuses too, should it ever be reached.
    page = AppTest.from_file(str(Path(APP).parent / "views" / "customers.py"), default_timeout=30)
    page.session_state["console_person"] = person_from_claims(
        people[VIEWER], "", ConsoleSettings.from_env())
    page.run()
    assert [e.value for e in page.error] == [
        "This page needs the support role; you are signed in as viewer."]
    assert not page.text_input


def test_runbook_link_opens_the_alerts_section(console, people):
    app = AppTest.from_file(APP, default_timeout=30)
    app.user = dict(people[VIEWER])
    app.query_params["runbook"] = "slo"
    app.query_params["section"] = "billingavailabilityfastburn"
    app.switch_page("views/runbooks.py").run()
    assert not app.exception
    assert any("BillingAvailabilityFastBurn" in i.value for i in app.info)
    assert app.markdown[0].value.startswith("## BillingAvailabilityFastBurn")

    app.selectbox[0].select("payments").run()
    assert not app.exception and not app.warning
    assert app.query_params.get("runbook") in ("payments", ["payments"])
    assert app.markdown[0].value.startswith("# ")  # the whole runbook, from its title


def test_engine_stopped_gives_a_banner_while_runbooks_keep_working(console, stack):
    # Last in this module: it stops the module's engine.
    stack.engine.stop()
    st.cache_data.clear()  # good answers are cached for seconds; the banner must not wait
    app = _search(console("views/customers.py"), "Console")
    assert any("billing engine unreachable" in e and stack.engine.url in e
               for e in _errors(app))
    runbooks = console("views/runbooks.py")
    assert not _errors(runbooks)
    assert any("Runbooks" == t.value for t in runbooks.title)
    assert runbooks.markdown, "the runbook index renders"
