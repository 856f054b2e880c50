"""Closing a billing period into invoices, the open period's preview, and the invoice list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from billing_core.periods import parse_period_key
from billing_engine.api import create_app
from billing_engine.audit.store import AuditStore
from billing_engine.customers.store import CustomerStore
from billing_engine.db import Database, create_database, migrate
from billing_engine.invoicing.service import Invoicing, PeriodClose
from billing_engine.invoicing.store import InvoiceStore
from billing_engine.settings import Settings
from devstack.servers import ROOT, wait_for
from tests.support.builders import ADMIN_HEADERS, hb, new_org, post_heartbeats

NOV_CLOSES = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)  # month end + the default 1 h grace


@pytest.fixture
def any_client(database: Database, settings, metrics, clock) -> Iterator[TestClient]:
    """The app on each backend we ship (SQLite embedded, PostgreSQL)."""
    app = create_app(settings, database=database, metrics=metrics, clock=clock,
                     housekeeping=False)
    with TestClient(app) as test_client:
        yield test_client


def use(client, org, clock, minutes, *, instances=2):
    """Send `minutes` billable instance-minutes ending now, spread over a few instances."""
    per = -(-minutes // instances)
    items = []
    for n in range(instances):
        count = min(per, minutes - n * per)
        items += [hb(f"{org}-vm{n}", org, clock() - timedelta(minutes=m)) for m in range(count)]
    for start in range(0, len(items), 5000):
        body = post_heartbeats(client, ADMIN_HEADERS, items[start:start + 5000])
        assert body.status_code == 200 and body.json()["rejected"] == 0, body.text


def close(client, admin, period="2026-11"):
    return client.post("/admin/invoices/close", params={"period": period}, headers=admin)


def invoices_of(client, org):
    response = client.get("/v1/invoices", params={"org_id": org}, headers=ADMIN_HEADERS)
    assert response.status_code == 200, response.text
    return response.json()["invoices"]


def amounts(invoice):
    return [(line["kind"], line["amount_cents"]) for line in invoice["lines"]]


def test_closing_a_period_invoices_every_org_with_lines_in_cents(any_client, admin, clock):
    client = any_client
    free = new_org(client, admin, plan="free")
    base = new_org(client, admin, plan="base_usage")
    idle = new_org(client, admin, plan="base_usage")
    use(client, free, clock, 15 * 60)
    use(client, base, clock, 130 * 60)
    clock.now = NOV_CLOSES + timedelta(seconds=1)
    response = close(client, admin)
    assert response.status_code == 200, response.text
    assert response.json()["invoices_created"] == 3
    assert response.json()["period"]["key"] == "2026-11"

    [free_invoice] = invoices_of(client, free)
    assert amounts(free_invoice) == [("base_fee", 0)]
    assert free_invoice["total_cents"] == 0 and free_invoice["usage"]["used_hours"] == 15.0

    [base_invoice] = invoices_of(client, base)
    assert amounts(base_invoice) == [("base_fee", 2000), ("overage", 750)]
    assert (base_invoice["subtotal_cents"], base_invoice["total_cents"]) == (2750, 2750)
    overage = base_invoice["lines"][1]
    assert (overage["quantity"], overage["unit"], overage["unit_amount_cents"],
            overage["minutes"]) == (30.0, "hour", 25, 1800)
    assert base_invoice["status"] == "finalized" and base_invoice["currency"] == "usd"
    assert base_invoice["period"]["key"] == "2026-11" and base_invoice["plan"] == "base_usage"

    [idle_invoice] = invoices_of(client, idle)
    assert amounts(idle_invoice) == [("base_fee", 2000)] and idle_invoice["total_cents"] == 2000


def test_closing_twice_writes_no_second_invoice_and_spends_no_credit_twice(
    any_client, admin, clock, metrics
):
    client = any_client
    client.app.state.services.invoicing.batch_size = 2  # five orgs: three batches
    orgs = [new_org(client, admin, plan="base_usage") for _ in range(5)]
    grant = client.post("/admin/credits", headers=admin,
                        json={"org_id": orgs[0], "amount_cents": 500, "reason": "goodwill"})
    assert grant.status_code == 201
    clock.now = NOV_CLOSES
    first = close(client, admin).json()
    again = close(client, admin).json()
    assert (first["invoices_created"], first["already_invoiced"]) == (5, 0)
    assert (again["invoices_created"], again["already_invoiced"]) == (0, 5)
    assert again["invoices_total"] == 5
    for org in orgs:
        assert len(invoices_of(client, org)) == 1
    assert invoices_of(client, orgs[0])[0]["total_cents"] == 1500
    credits = client.get("/v1/credits", params={"org_id": orgs[0]}, headers=admin).json()
    assert credits["balance_cents"] == 0
    assert credits["credits"][0]["applications"][0]["amount_cents"] == 500
    assert metrics.registry.get_sample_value("invoices_created_total") == 5


def test_the_preview_in_billing_equals_the_invoice_after_closing(any_client, admin, clock):
    client = any_client
    clock.now = datetime(2026, 11, 30, 23, 0, tzinfo=UTC)
    org = new_org(client, admin, plan="base_usage")
    use(client, org, clock, 101 * 60 + 30)
    client.post(f"/admin/credits/{org}", headers=admin,
                json={"amount_cents": 300, "reason": "ticket 88: outage credit"})
    billing = client.get("/v1/billing", params={"org_id": org}, headers=admin).json()
    preview = billing["invoice_preview"]
    assert preview["status"] == "preview" and preview["id"] is None
    assert amounts(preview) == [("base_fee", 2000), ("overage", 38), ("credit", -300)]
    assert preview["subtotal_cents"] == billing["charges"]["estimated_total_cents"] == 2038
    assert preview["total_cents"] == 1738

    clock.now = NOV_CLOSES + timedelta(minutes=5)
    assert close(client, admin).json()["invoices_created"] == 1
    [invoice] = invoices_of(client, org)
    assert invoice["status"] == "finalized" and isinstance(invoice["id"], int)
    same = ("org_id", "period", "plan", "currency", "usage", "lines", "subtotal_cents",
            "credits_applied_cents", "total_cents")
    assert {k: invoice[k] for k in same} == {k: preview[k] for k in same}


def test_a_period_cannot_close_before_its_grace_has_passed(any_client, admin, clock):
    clock.now = NOV_CLOSES - timedelta(minutes=30)  # late heartbeats for November still count
    response = close(any_client, admin)
    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["field"] == "period" and "still open" in error["reason"]
    assert "2026-12-01T01:00:00+00:00" in error["reason"]


@pytest.mark.parametrize("period", ["2026-13", "november", "2026-1", ""])
def test_a_bad_period_names_the_field(client, admin, period):
    response = close(client, admin, period)
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "period"


def test_invoice_list_is_newest_first_and_filters_by_period(client, admin, clock):
    clock.now = datetime(2026, 10, 20, 12, 0, tzinfo=UTC)
    org = new_org(client, admin, plan="team")
    use(client, org, clock, 60)
    clock.now = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)
    use(client, org, clock, 120)
    clock.now = NOV_CLOSES
    assert close(client, admin, "2026-10").json()["invoices_created"] == 1
    assert close(client, admin, "2026-11").json()["invoices_created"] == 1
    listed = invoices_of(client, org)
    assert [i["period"]["key"] for i in listed] == ["2026-11", "2026-10"]
    assert [i["usage"]["used_minutes"] for i in listed] == [120, 60]
    october = client.get("/v1/invoices", params={"org_id": org, "period": "2026-10"},
                         headers=admin).json()
    assert [i["period"]["key"] for i in october["invoices"]] == ["2026-10"]


def test_an_org_created_after_the_period_gets_no_invoice_for_it(client, admin, clock):
    clock.now = datetime(2026, 12, 1, 0, 30, tzinfo=UTC)
    org = new_org(client, admin)
    clock.now = NOV_CLOSES
    assert close(client, admin).json()["invoices_created"] == 0
    assert invoices_of(client, org) == []


def test_invoice_list_names_the_unknown_org_and_bad_values(admin, client):
    missing = client.get("/v1/invoices", params={"org_id": "org_nobody"}, headers=admin)
    assert missing.status_code == 404
    assert missing.json()["errors"] == [{"field": "org_id",
                                         "reason": "no org with id 'org_nobody'"}]
    bad_id = client.get("/v1/invoices", params={"org_id": "bad id!"}, headers=admin)
    assert bad_id.status_code == 422 and bad_id.json()["errors"][0]["field"] == "org_id"
    no_id = client.get("/v1/invoices", headers=admin)
    assert no_id.status_code == 422 and no_id.json()["errors"][0] == {
        "field": "org_id", "reason": "is required"}


def test_bad_period_filter_names_the_field(client, admin):
    org = new_org(client, admin)
    for period in ("2026-00", "26-11"):
        response = client.get("/v1/invoices", params={"org_id": org, "period": period},
                              headers=admin)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "period"


def test_closing_needs_the_admin_key(client):
    assert client.post("/admin/invoices/close", params={"period": "2026-10"}).status_code == 401


def test_the_housekeeping_loop_closes_last_month_by_itself(pg_database, metrics, clock, admin):
    settings = Settings(admin_api_key=admin["X-Admin-Key"], environment="test",
                        housekeeping_interval_seconds=0.05)
    app = create_app(settings, database=pg_database, metrics=metrics, clock=clock)
    with TestClient(app) as client:
        org = new_org(client, admin, plan="base_usage")
        use(client, org, clock, 30)
        clock.now = NOV_CLOSES + timedelta(seconds=10)
        wait_for(lambda: invoices_of(client, org), timeout=10, what="November's invoice")
        [invoice] = invoices_of(client, org)
        assert invoice["period"]["key"] == "2026-11" and invoice["total_cents"] == 2000
    # Known closed: the check costs nothing more and writes nothing.
    assert app.state.services.invoicing.close_due_period() is None


def test_the_due_check_waits_for_the_grace_then_closes_once(client, admin, clock):
    invoices: Invoicing = client.app.state.services.invoicing
    new_org(client, admin)
    clock.now = NOV_CLOSES - timedelta(seconds=1)
    assert invoices.close_due_period() is None
    clock.now = NOV_CLOSES
    closed = invoices.close_due_period()
    assert closed is not None and closed.created == 1
    # A restarted engine reads the closed period from the database instead of closing again.
    fresh = Invoicing(store=invoices.store, customers=invoices.customers,
                      catalog=invoices.catalog, metrics=invoices.metrics,
                      close_grace=invoices.close_grace, clock=invoices.clock)
    assert fresh.close_due_period() is None


def test_two_replicas_closing_at_once_write_each_invoice_once(client, admin, clock, pg_database):
    orgs = [new_org(client, admin, plan="base_usage") for _ in range(12)]
    for org in orgs:
        client.post("/admin/credits", headers=admin,
                    json={"org_id": org, "amount_cents": 700, "reason": "launch credit"})
    clock.now = NOV_CLOSES
    running: Invoicing = client.app.state.services.invoicing
    replicas = [Invoicing(store=InvoiceStore(pg_database), customers=running.customers,
                          catalog=running.catalog, metrics=running.metrics,
                          close_grace=timedelta(hours=1), clock=running.clock, batch_size=3)
                for _ in range(2)]
    results: list[PeriodClose] = []
    errors: list[BaseException] = []

    def run(replica: Invoicing) -> None:
        try:
            results.append(replica.close_period(parse_period_key("2026-11")))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert errors == []
    assert sum(r.created for r in results) == 12
    for org in orgs:
        [invoice] = invoices_of(client, org)
        assert invoice["credits_applied_cents"] == 700 and invoice["total_cents"] == 1300
        assert client.get("/v1/credits", params={"org_id": org},
                          headers=admin).json()["balance_cents"] == 0


@pytest.mark.processes
def test_the_close_period_command_closes_a_period_and_refuses_an_open_one(tmp_path):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    migrate(url)
    database = create_database(url)
    CustomerStore(database).upsert_org(org_id="org_old", name="Old",
                                       billing_email="a@old.example", plan="base_usage",
                                       now=datetime(2019, 12, 5, tzinfo=UTC))
    env = {**os.environ, "DATABASE_URL": url, "APP_ENV": "test"}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "billing_engine", *args], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=60)

    closed = cli("close-period", "--period", "2020-01")
    assert closed.returncode == 0, closed.stderr
    assert json.loads(closed.stdout)["invoices_created"] == 1
    future = cli("close-period", "--period", "2999-01")
    assert future.returncode == 2 and future.stderr.startswith("period: 2999-01 is still open")
    entries = AuditStore(database).recent(limit=5)
    assert [(e.actor, e.path, e.status) for e in entries] == [
        ("cli", "close-period", 422), ("cli", "close-period", 200)]
    database.dispose()


def test_stripe_invoice_id_and_status_can_be_attached_for_reconciliation(any_client, admin, clock):
    org = new_org(any_client, admin)
    clock.now = NOV_CLOSES
    close(any_client, admin)
    store: InvoiceStore = any_client.app.state.services.invoicing.store
    assert store.record_stripe_invoice(org_id=org, period_key="2026-11",
                                       stripe_invoice_id="in_1Abc", status="paid")
    assert not store.record_stripe_invoice(org_id=org, period_key="2026-10",
                                           stripe_invoice_id="in_none")
    [invoice] = invoices_of(any_client, org)
    assert (invoice["stripe_invoice_id"], invoice["status"]) == ("in_1Abc", "paid")
