"""The support card's billing and payments, and the usage and payments page, against the real
thing: an engine fed signed Stripe webhooks, a Prometheus scraping it, and the alerts process
(with a real SMTP server) sending an org's budget alert.

The seeded org, "Payments Test Co" on base_usage:
- 60 instances x 51 minutes = 51.00 h used of 100 h (so the 50 % budget alert goes out);
- a Stripe subscription, past_due and set to cancel at period end;
- payments: $20.00 and $24.80 paid by card, $21.25 declined (insufficient funds), $5.00 of the
  first refunded: 3 attempts, 2 succeeded, success rate 2/3, refund rate 1/2;
- a $7.50 credit, so the open period's preview is $20.00 - $7.50 = $12.50;
- last month's invoice (the org is dated back into it): the base fee, $20.00.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import streamlit as st
from sqlalchemy import create_engine, text
from streamlit.testing.v1 import AppTest

from devstack.processes import AlertsProcess, EngineProcess, PrometheusServer
from devstack.receivers import SmtpServer
from devstack.servers import create_scratch_database, drop_database, wait_for
from devstack.stack import Stack
from tests.dashboard.conftest import (
    ADMIN,
    ADMIN_PERSON,
    OPERATOR,
    SUPPORT,
)
from tests.support.builders import engine_org_key
from tests.support.stripe_events import (
    WEBHOOK_SECRET,
    charge,
    checkout_completed,
    event,
    invoice,
    new_id,
    payment_intent,
    refunded_charge,
    signature_header,
    subscription,
)

# One worker runs the whole module, so its module-scoped stack is started once.
pytestmark = [pytest.mark.processes, pytest.mark.xdist_group("test_pages_billing_live")]

APP = str(Path(__file__).resolve().parents[2] / "dashboard" / "app.py")
PAYING_ORG_NAME, ADMIN_ORG_NAME = "Payments Test Co", "Admin Test Co"
INSTANCES, MINUTES = 60, 51  # 3,060 billable minutes = 51.00 h: over the 50 % budget threshold
ADMIN_HEADERS = {"X-Admin-Key": ADMIN}
SUCCESS_RATE = ('(sum(rate(payments_total{outcome="succeeded"}[15m])) or vector(0))'
                " / sum(rate(payments_total[15m]))")


@dataclass
class BillingStack:
    engine: EngineProcess
    prometheus: PrometheusServer
    alerts: AlertsProcess
    paying_org: str
    admin_org: str
    last_period: str
    console_env: dict[str, str]  # what `python -m dashboard` would give the app
    people: dict[str, dict[str, Any]]  # support, operator and admin, signed in


def _new_org(engine: EngineProcess, name: str) -> str:
    org = f"org_{uuid.uuid4().hex[:8]}"
    response = httpx.put(f"{engine.url}/admin/orgs/{org}", headers=ADMIN_HEADERS,
                         json={"name": name, "email": f"{org}@example.com", "plan": "base_usage"})
    assert response.status_code == 201, response.text
    return org


def _deliver(engine: EngineProcess, evt: dict[str, Any]) -> None:
    body = json.dumps(evt)
    response = httpx.post(f"{engine.url}/webhooks/stripe", content=body, headers={
        "Content-Type": "application/json", "Stripe-Signature": signature_header(body)})
    assert response.status_code == 200 and response.json()["outcome"] == "handled", response.text


def _seed_usage(engine: EngineProcess) -> str:
    org = _new_org(engine, PAYING_ORG_NAME)
    now = datetime.now(UTC).replace(second=5, microsecond=0)
    beats = [{"instance_id": f"{org}-vm{i}", "org_id": org,
              "ts": (now - timedelta(minutes=m + 1)).isoformat(), "state": "running"}
             for i in range(INSTANCES) for m in range(MINUTES)]
    answer = httpx.post(f"{engine.url}/v1/heartbeats", json={"heartbeats": beats},
                        headers=engine_org_key(engine.url, ADMIN, org), timeout=30).json()
    assert answer["accepted"] == INSTANCES * MINUTES, answer
    return org


def _seed_payments(engine: EngineProcess, database_url: str, org: str) -> str:
    """Subscription, payments, refund, credit and last month's invoice; returns that month."""
    customer, sub = new_id("cus"), new_id("sub")
    created = int(time.time())
    _deliver(engine, event("checkout.session.completed", checkout_completed(org, customer, sub),
                           created=created))
    _deliver(engine, event("customer.subscription.created", subscription(
        sub, customer, "past_due", price="price_base_usage_monthly",
        period_start=created - 5 * 86400, period_end=created + 25 * 86400,
        cancel_at_period_end=True), created=created))
    # As Stripe sends them: the charge events carry the payment details, the invoice events
    # carry none (the engine here has no Stripe key to fetch them with).
    _deliver(engine, event("charge.succeeded", charge(
        customer, 2000, charge_id="ch_first", payment_intent="pi_first"), created=created))
    # Stripe's invoice for last month, paid; our invoice for it closes below and shows it.
    last_month = (datetime.now(UTC).replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    _deliver(engine, event("invoice.paid", invoice(
        customer, 2000, paid=True, number="PAYING-0007", metadata={"period": last_month}),
        created=created))
    _deliver(engine, event("charge.succeeded", charge(customer, 2480), created=created))
    _deliver(engine, event("charge.failed", charge(
        customer, 2125, charge_id="ch_declined", payment_intent="pi_declined",
        decline="insufficient_funds"), created=created))
    _deliver(engine, event("payment_intent.payment_failed", payment_intent(
        customer, 2125, intent_id="pi_declined", latest_charge="ch_declined",
        decline="insufficient_funds"), created=created))
    _deliver(engine, event("invoice.payment_failed", invoice(customer, 2125, paid=False),
                           created=created))
    _deliver(engine, event("charge.refunded", refunded_charge(
        "ch_first", customer, amount=2000, amount_refunded=500, payment_intent="pi_first"),
        created=created + 1))
    credit = httpx.post(f"{engine.url}/admin/credits", headers=ADMIN_HEADERS, json={
        "org_id": org, "amount_cents": 750, "reason": "ticket 4711: goodwill"})
    assert credit.status_code == 201, credit.text

    # The org existed last month (seeded straight into our own scratch database), so closing
    # last month writes its invoice: the base fee, no usage, no credit (granted after the close).
    now = datetime.now(UTC)
    last_period = (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    database = create_engine(database_url)
    with database.begin() as conn:
        conn.execute(text("UPDATE orgs SET created_at = :at WHERE id = :org"),
                     {"at": now - timedelta(days=62), "org": org})
    database.dispose()
    closed = httpx.post(f"{engine.url}/admin/invoices/close", params={"period": last_period},
                        headers=ADMIN_HEADERS)
    assert closed.status_code == 200, closed.text
    return last_period


def _samples(prometheus: PrometheusServer, metric: str) -> int:
    result = prometheus.query(f"min(count_over_time({metric}[5m]))")
    return int(float(result[0]["value"][1])) if result else 0


@pytest.fixture(scope="module")
def billing_stack(pg_server_url: str) -> Iterator[BillingStack]:
    database_url = create_scratch_database(pg_server_url)
    with SmtpServer() as smtp:
        stack = Stack(database_url, admin_key=ADMIN,
                      parts=("oidc", "engine", "prometheus", "alerts"),
                      # no Redis: the machine's shared one stays untouched
                      engine_env={"STRIPE_WEBHOOK_SECRET": WEBHOOK_SECRET,
                                  "PERIOD_CLOSE_GRACE_SECONDS": "0", "REDIS_URL": ""},
                      alerts_env={"BUDGET_INTERVAL_SECONDS": "0.5",
                                  "PERIOD_CLOSE_GRACE_SECONDS": "0", "SMTP_HOST": smtp.host,
                                  "SMTP_PORT": str(smtp.port), "SLACK_WEBHOOK_URL": ""})
        try:
            stack.start()
            assert stack.engine and stack.prometheus and stack.alerts
            engine, prometheus, alerts = stack.engine, stack.prometheus, stack.alerts
            # increase() sees a counter's first move only if it was scraped before it moved.
            wait_for(lambda: _samples(prometheus, "heartbeats_ingested_total") >= 1, timeout=30,
                     what="a first scrape of the engine")
            org = _seed_usage(engine)
            admin_org = _new_org(engine, ADMIN_ORG_NAME)
            # rate() and increase() extrapolate to the end of their window by up to one scrape
            # interval, a share of the history they see: 15 scrapes of the payment counters at
            # zero first keep that under 8 %, so 3 attempts read 3.
            wait_for(lambda: _samples(prometheus, "payments_total") >= 15, timeout=60,
                     what="15 scrapes of the payment counters")
            last_period = _seed_payments(engine, database_url, org)

            def budget_email_sent() -> bool:
                body = httpx.get(f"{alerts.url}/debug/alerts/{org}", headers={
                    "X-Admin-Key": ADMIN}).json()
                return any(d["status"] == "sent" for n in body["budget_alerts"]
                           for d in n["deliveries"])

            def payments_scraped() -> bool:
                rate = prometheus.query(SUCCESS_RATE)
                return (bool(rate) and 0 < float(rate[0]["value"][1]) < 1
                        and bool(prometheus.query("refunds_total > 0")))

            wait_for(budget_email_sent, timeout=30, what="the 50 % budget email to be sent")
            wait_for(payments_scraped, timeout=30, what="Prometheus to see the payments")
            assert stack.oidc is not None
            people = {p: stack.console_user(p) for p in (SUPPORT, OPERATOR, ADMIN_PERSON)}
            yield BillingStack(engine, prometheus, alerts, org, admin_org, last_period,
                               stack.console_environ(), people)
        finally:
            stack.stop()
            drop_database(database_url)


@pytest.fixture
def open_console(billing_stack: BillingStack,
                 monkeypatch: pytest.MonkeyPatch) -> Callable[..., AppTest]:
    for name, value in billing_stack.console_env.items():
        monkeypatch.setenv(name, value)
    st.cache_data.clear()

    def open_page(page: str, *, search: str | None = None, person: str = SUPPORT) -> AppTest:
        app = AppTest.from_file(APP, default_timeout=30)
        app.user = dict(billing_stack.people[person])
        app.run()
        app.switch_page(page)
        app.run()
        if search is not None:
            app.text_input(key="customer_query").input(search).run()
        assert not app.exception, [e.value for e in app.exception]
        return app

    return open_page


def _errors(app: AppTest) -> list[str]:
    return [e.value for e in app.error]


def _metrics(app: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in app.metric}


def _tables(app: AppTest, column: str) -> list[pd.DataFrame]:
    return [d.value for d in app.dataframe if column in d.value.columns]


def _table(app: AppTest, column: str) -> pd.DataFrame:
    tables = _tables(app, column)
    assert len(tables) == 1, f"one table with a {column!r} column"
    return tables[0]


def _chart_titles(app: AppTest) -> list[str]:
    specs = [json.loads(chart.proto.spec) for chart in app.get("plotly_chart")]
    return [spec["layout"].get("title", {}).get("text", "") for spec in specs]


def _money(value: str) -> float:
    return float(value.replace("$", "").replace(",", ""))


def test_customer_card_shows_subscription_preview_invoices_payments_and_credits(
        open_console, billing_stack):
    app = open_console("views/customers.py", search=PAYING_ORG_NAME)
    assert not _errors(app)
    metrics = _metrics(app)
    assert metrics["Used"] == "51.00 h"
    assert metrics["Subscription status"] == "past_due"
    assert metrics["At period end"] == "cancels"
    assert any("Stripe customer `cus_" in m.value and "treat it as **past_due**" in m.value
               for m in app.markdown)
    # The open period's invoice: the $20.00 base fee less the $7.50 credit.
    assert (metrics["Preview subtotal"], metrics["Credits applied"], metrics["Preview total"]) == (
        "$20.00", "-$7.50", "$12.50")
    # Line tables: the preview's, then last month's invoice in its expander.
    preview, last_month = _tables(app, "Unit price")
    assert [(line["Line"], line["Amount"]) for line in preview.to_dict("records")] == [
        (f"Base + usage plan, {datetime.now(UTC):%Y-%m}", "$20.00"),
        ("Credit #1: ticket 4711: goodwill", "-$7.50")]
    assert list(last_month["Line"]) == [f"Base + usage plan, {billing_stack.last_period}"]

    invoices = _table(app, "Closed")
    assert invoices[["Period", "Status", "Total"]].to_dict("records") == [
        {"Period": billing_stack.last_period, "Status": "finalized", "Total": "$20.00"}]
    # Beside it, what Stripe billed: its number, status, amount paid and the customer's page.
    stripe = invoices.iloc[0]
    assert (stripe["Stripe invoice"], stripe["Stripe status"], stripe["Paid in Stripe"]) == (
        "PAYING-0007", "paid", "$20.00")
    assert stripe["Stripe page"].startswith("https://invoice.stripe.com/i/")
    # Stripe's own list: that invoice and the one whose payment failed.
    stripes = _table(app, "Due")[["Number", "Status", "Period", "Paid"]].to_dict("records")
    assert len(stripes) == 2 and {"Number": "PAYING-0007", "Status": "paid",
                                  "Period": billing_stack.last_period, "Paid": "$20.00"} in stripes
    assert {"open", "paid"} == {row["Status"] for row in stripes}
    assert any(billing_stack.last_period in e.label for e in app.expander)

    assert (metrics["Payment attempts"], metrics["Succeeded"], metrics["Failed"]) == ("3", "2", "1")
    assert (metrics["Collected"], metrics["Refunded"]) == ("$44.80", "$5.00")
    payments = _table(app, "Failure reason")
    declined = payments[payments["Outcome"] == "failed"].iloc[0]
    assert declined["Amount"] == "$21.25"
    assert declined["Failure reason"].startswith("insufficient funds")
    assert sorted(payments["Refunded"]) == ["", "", "$5.00"]

    assert metrics["Credit balance"] == "$7.50"
    credits = _table(app, "Granted by")
    assert credits[["Amount", "Remaining", "Reason"]].to_dict("records") == [
        {"Amount": "$7.50", "Remaining": "$7.50", "Reason": "ticket 4711: goodwill"}]
    # The budget alerts the alerts process sent, which support reads too.
    sent = _table(app, "Threshold").to_dict("records")
    assert [(row["Threshold"], row["Usage then"], row["Sent to"]) for row in sent] == [
        ("50 %", "51.00 h of 100.00 h", f"{billing_stack.paying_org}@example.com")]
    assert sent[0]["Delivery"].startswith("email via customer-email: sent ")


def test_actions_follow_the_role_and_the_engine_records_the_person(open_console, billing_stack):
    app = open_console("views/customers.py", search=ADMIN_ORG_NAME, person=SUPPORT)
    assert not [b for b in app.button if b.key in ("recompute_entitlements",
                                                   "grant_credit_submit")]
    assert any("Read-only" in i.value for i in app.info)
    assert _metrics(app)["Credit balance"] == "$0.00"
    # Support may resync from Stripe; this org never went through checkout, so there is no
    # Stripe customer to resync from, and the engine's reason is shown.
    app.button(key="resync_from_stripe").click().run()
    assert any("HTTP 409" in e and "not linked to a Stripe customer" in e
               for e in _errors(app)), _errors(app)

    app = open_console("views/customers.py", search=ADMIN_ORG_NAME, person=OPERATOR)
    assert not [b for b in app.button if b.key == "grant_credit_submit"]
    assert any("Granting a credit needs the admin role" in i.value for i in app.info)

    app = open_console("views/customers.py", search=ADMIN_ORG_NAME, person=ADMIN_PERSON)
    app.button(key="recompute_entitlements").click().run()
    assert any("Entitlements recomputed" in s.value and "active" in s.value
               for s in app.success), _errors(app)

    # An empty grant: the engine's field errors, under the form's names.
    app.button(key="grant_credit_submit").click().run()
    refused = " ".join(_errors(app))
    assert "HTTP 422" in refused
    assert "Amount (amount_cents)" in refused and "Reason (reason)" in refused
    assert _metrics(app)["Credit balance"] == "$0.00"

    app.number_input(key="credit_amount").set_value(2.5)
    app.text_input(key="credit_reason").input("ticket 4712: double charge")
    app.button(key="grant_credit_submit").click().run()
    assert any("Credit #" in s.value and "$2.50" in s.value for s in app.success), _errors(app)
    assert _metrics(app)["Credit balance"] == "$2.50"  # the card re-read after the grant
    assert app.text_input(key="credit_reason").value == ""  # ready for the next grant
    credits = httpx.get(f"{billing_stack.engine.url}/v1/credits", headers=ADMIN_HEADERS,
                        params={"org_id": billing_stack.admin_org}).json()
    assert [(c["amount_cents"], c["granted_by"]) for c in credits["credits"]] == [
        (250, ADMIN_PERSON)]


def test_usage_page_shows_payment_rates_failures_revenue_and_the_meter(open_console):
    app = open_console("views/usage_payments.py")
    assert not _errors(app)
    metrics = _metrics(app)
    assert metrics["Payment success rate, 15 min"] == "66.67 %"
    assert metrics["Payment attempts, 15 min"] == "3"
    assert metrics["Refund rate, 1 h"] == "50.00 %"
    deltas = {m.label: m.delta for m in app.metric}
    assert deltas["Payment success rate, 15 min"] == "-28.33 pts vs the 95 % alert line"
    assert deltas["Refund rate, 1 h"] == "+45.00 pts vs the 5 % alert line"
    # $20.00 + $24.80 succeeded; the declined $21.25 is not revenue.
    assert 44.80 <= _money(metrics["Revenue, last hour"]) < 44.80 * 1.1
    assert metrics["Stripe circuit breaker"] == "closed"
    assert metrics["Records waiting"].replace(",", "").isdigit()
    titles = _chart_titles(app)
    for title in ("Payment success rate (15 min window)", "Refund rate (1 h window)",
                  "Payment failures by reason, last 6 hours",
                  "Revenue per hour (successful payments)", "Usage per hour, all orgs"):
        assert title in titles
    infos = " ".join(i.value for i in app.info)
    assert "not exported" not in infos and "No payment attempt" not in infos


def test_alerts_api_stopped_gives_a_banner_while_the_card_still_renders(
        open_console, billing_stack):
    # Last in this module: it stops the module's alerts process.
    billing_stack.alerts.stop()
    for person in (SUPPORT, ADMIN_PERSON):
        app = open_console("views/customers.py", search=PAYING_ORG_NAME, person=person)
        banners = _errors(app)
        assert len(banners) == 1, banners
        assert "alerts API unreachable" in banners[0] and billing_stack.alerts.url in banners[0]
        metrics = _metrics(app)
        assert metrics["Preview total"] == "$12.50" and metrics["Credit balance"] == "$7.50"
        assert metrics["Subscription status"] == "past_due"


def test_prometheus_stopped_gives_a_banner_while_top_orgs_still_render(
        open_console, billing_stack):
    # Last in this module: it stops the module's Prometheus.
    billing_stack.prometheus.stop()
    app = open_console("views/usage_payments.py")
    banners = _errors(app)
    assert len(banners) == 1, banners
    assert "Prometheus unreachable" in banners[0] and billing_stack.prometheus.url in banners[0]
    top = _table(app, "Used %")
    assert f"{PAYING_ORG_NAME} ({billing_stack.paying_org})" in list(top["Org"])
    assert not app.get("plotly_chart")


def test_reconciliation_page_lists_runs_and_opens_one_for_operators(open_console,
                                                                    billing_stack):
    ran = httpx.post(f"{billing_stack.engine.url}/admin/reconciliation/run",
                     params={"period": billing_stack.last_period}, headers=ADMIN_HEADERS,
                     timeout=30)
    assert ran.status_code == 200, ran.text
    app = open_console("views/reconciliation.py", person=OPERATOR)
    assert not _errors(app)
    runs = _table(app, "Trigger")
    assert billing_stack.last_period in list(runs["Period"])
    assert "manual" in list(runs["Trigger"])
    metrics = _metrics(app)
    assert metrics["Mismatches"] == str(ran.json()["mismatch_count"])
    # Without Stripe keys there is no meter to ask, and the page says why the column is empty.
    assert metrics["Meter summaries compared"] == "no"
    assert any("STRIPE_METER_EVENT_NAME" in c.value for c in app.caption)

    support = open_console("views/customers.py", person=SUPPORT)
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        support.switch_page("views/reconciliation.py")
