"""Resync one org from Stripe on demand: a lost webhook left the org on the wrong plan; support
presses resync and the org, its subscription, its entitlements and its invoice links follow
what Stripe holds, with the change in the audit log."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from billing_engine.customers.tables import orgs
from billing_engine.invoicing.tables import invoices

NOV = datetime(2026, 11, 1, tzinfo=UTC)
OCT = datetime(2026, 10, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)


def org_linked(client, admin, database, org: str, customer: str | None, plan: str = "free"):
    answer = client.put(f"/admin/orgs/{org}", headers=admin,
                        json={"name": org, "email": f"{org}@x.example", "plan": plan})
    assert answer.status_code in (200, 201), answer.text
    with database.engine.begin() as conn:
        conn.execute(orgs.update().where(orgs.c.id == org).values(stripe_customer_id=customer))


def test_resync_puts_the_org_on_the_plan_stripe_bills_and_audits_the_change(
        engine, admin, pg_database, fake, staff_key):
    org_linked(engine, admin, pg_database, "org_lost", "cus_lost", plan="free")
    with pg_database.engine.begin() as conn:  # October's invoice, closed before the upgrade
        conn.execute(invoices.insert().values(
            org_id="org_lost", period="2026-10", period_start=OCT, period_end=NOV, plan="free",
            currency="usd", included_minutes=0, used_minutes=0, overage_minutes=0,
            subtotal_cents=0, credits_cents=0, total_cents=0, status="finalized",
            stripe_invoice_id=None, closed_at=NOV))
    fake.support.add_customer("cus_lost")
    fake.support.add_subscription(customer="cus_lost", price="price_team_monthly",
                                  period_start=int(NOV.timestamp()),
                                  period_end=int(DEC.timestamp()), subscription_id="sub_team")
    fake.support.add_subscription(customer="cus_lost", price="price_base_usage_monthly",
                                  status="canceled", period_start=int(OCT.timestamp()),
                                  period_end=int(NOV.timestamp()), subscription_id="sub_old")
    paid = fake.support.create_invoice(customer="cus_lost", total=4900, status="paid",
                                       created=int(NOV.timestamp()),
                                       period_start=int(OCT.timestamp()),
                                       period_end=int(NOV.timestamp()))
    support = staff_key("support")
    before = engine.get("/v1/entitlements/org_lost", headers=support).json()
    assert before["effective_plan"] == "free"

    answer = engine.post("/v1/customers/org_lost/resync", headers=support)

    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["plan_before"], body["plan_after"], body["effective_plan"]) == (
        "free", "team", "team")
    assert body["changed"] is True and body["subscription_status"] == "active"
    assert {(s["id"], s["status_before"], s["status_after"]) for s in body["subscriptions"]} == {
        ("sub_team", None, "active"), ("sub_old", None, "canceled")}
    [invoice] = body["invoices"]
    assert (invoice["id"], invoice["period"], invoice["linked"]) == (paid["id"], "2026-10", True)
    assert invoice["number"] == paid["number"]
    after = engine.get("/v1/entitlements/org_lost", headers=support).json()
    assert after["effective_plan"] == "team"
    ours = engine.get("/v1/invoices", params={"org_id": "org_lost"}, headers=support).json()
    assert ours["invoices"][0]["stripe_invoice_id"] == paid["id"]
    assert ours["invoices"][0]["status"] == "paid"
    # The subscription list asked for every status: canceled ones say which plan ended.
    [listing] = fake.requests_to("/v1/subscriptions")
    assert listing.query == {"customer": "cus_lost", "status": "all", "limit": "100"}
    audit = engine.get("/admin/audit", params={"org_id": "org_lost"}, headers=admin).json()
    [row] = [e for e in audit if e["path"] == "/v1/customers/org_lost/resync"]
    assert (row["outcome"], row["status"], row["org_id"]) == ("succeeded", 200, "org_lost")
    assert row["actor"].startswith("support-")
    change = json.loads(row["summary"]) if isinstance(row["summary"], str) else row["summary"]
    assert change["changed"] is True and change["resync"]["plan"] == ["free", "team"]
    assert change["resync"]["subscriptions"][0]["status"][0] is None

    again = engine.post("/v1/customers/org_lost/resync", headers=support).json()
    assert again["changed"] is False
    audit = engine.get("/admin/audit", params={"org_id": "org_lost"}, headers=admin).json()
    assert len([e for e in audit if e["path"] == "/v1/customers/org_lost/resync"]) == 2


def test_resync_refuses_an_unlinked_org_a_viewer_and_changes_nothing_when_stripe_fails(
        engine, admin, pg_database, fake, staff_key):
    org_linked(engine, admin, pg_database, "org_free", None)
    org_linked(engine, admin, pg_database, "org_b", "cus_b", plan="base_usage")
    support = staff_key("support")

    unlinked = engine.post("/v1/customers/org_free/resync", headers=support)
    assert unlinked.status_code == 409
    assert unlinked.json()["errors"][0]["field"] == "org_id"
    assert engine.post("/v1/customers/org_b/resync", headers=staff_key("viewer")
                       ).status_code == 403
    assert engine.post("/v1/customers/nobody/resync", headers=support).status_code == 404
    unknown = engine.post("/v1/customers/org_b/resync", headers=support)  # not in Stripe
    assert unknown.status_code == 409 and "cus_b" in unknown.json()["errors"][0]["reason"]

    fake.support.add_customer("cus_b")
    fake.fail_next(1, status=500, path="/v1/subscriptions")
    failed = engine.post("/v1/customers/org_b/resync", headers=support)
    assert failed.status_code == 502
    audit = engine.get("/admin/audit", params={"org_id": "org_b"}, headers=admin).json()
    assert [(e["status"], e["outcome"]) for e in audit][0] == (502, "failed")
    org = engine.get("/v1/customers", params={"q": "org_b"}, headers=support).json()
    assert org["results"][0]["plan"] == "base_usage"
