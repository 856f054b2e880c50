"""Customer search finds an org by what a customer quotes from Stripe: the customer id on their
card statement, a subscription id, an invoice id or the invoice number on the PDF."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from billing_engine.customers.tables import orgs
from billing_engine.invoicing.tables import invoices, stripe_invoices
from billing_engine.subscriptions.tables import subscriptions

NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)


@pytest.fixture
def engine(engine: TestClient, pg_database, settings) -> Iterator[TestClient]:
    """The engine on the stand-in, with four linked orgs, a subscription and a linked invoice."""
    for org, customer in (("org_card", "cus_Card1"), ("org_sub", "cus_Sub1"),
                          ("org_inv", "cus_Inv1"), ("org_pdf", "cus_Pdf1")):
        engine.put(f"/admin/orgs/{org}", headers={"X-Admin-Key": settings.admin_api_key},
                   json={"name": org, "email": f"{org}@x.example", "plan": "base_usage"})
        with pg_database.engine.begin() as conn:
            conn.execute(orgs.update().where(orgs.c.id == org)
                         .values(stripe_customer_id=customer))
    with pg_database.engine.begin() as conn:
        conn.execute(subscriptions.insert().values(
            id="sub_Quoted9", org_id="org_sub", customer_id="cus_Sub1", status="active",
            price_ids="price_base_usage_monthly", plan="base_usage",
            current_period_start=NOV, current_period_end=DEC, cancel_at_period_end=False,
            event_created_at=NOV, event_id="evt_1", updated_at=NOV))
        conn.execute(invoices.insert().values(
            org_id="org_inv", period="2026-11", period_start=NOV, period_end=DEC,
            plan="base_usage", currency="usd", included_minutes=0, used_minutes=0,
            overage_minutes=0, subtotal_cents=2000, credits_cents=0, total_cents=2000,
            status="finalized", stripe_invoice_id="in_Linked7", closed_at=DEC))
    yield engine


def found(client: TestClient, headers: dict[str, str], query: str) -> tuple[list[str], dict]:
    answer = client.get("/v1/customers", params={"q": query}, headers=headers)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    return [o["id"] for o in body["results"]], body


def test_a_customer_subscription_or_linked_invoice_id_finds_its_org(engine, staff_key, fake):
    support = staff_key("support")
    assert found(engine, support, "cus_Card1")[0] == ["org_card"]
    assert found(engine, support, " sub_Quoted9 ")[0] == ["org_sub"]
    assert found(engine, support, "in_Linked7")[0] == ["org_inv"]
    assert found(engine, support, "org_")[0] == ["org_card", "org_inv", "org_pdf", "org_sub"]
    assert fake.requests == []  # all of it from our own tables


def test_an_invoice_its_events_described_is_found_by_number_or_id_without_asking_stripe(
        engine, staff_key, fake, pg_database):
    with pg_database.engine.begin() as conn:
        conn.execute(stripe_invoices.insert().values(
            org_id="org_card", stripe_invoice_id="in_FromEvent3", customer_id="cus_Card1",
            number="CARD1A2B-0007", status="paid", currency="usd", amount_due_cents=2000,
            amount_paid_cents=2000, total_cents=2000, period="2026-11", event_created=DEC,
            updated_at=DEC))
    support = staff_key("support")
    assert found(engine, support, "card1a2b-0007")[0] == ["org_card"]
    assert found(engine, support, "in_FromEvent3")[0] == ["org_card"]
    assert fake.requests == []


def test_an_invoice_number_or_unlinked_invoice_id_is_looked_up_in_stripe(
        engine, staff_key, fake):
    support = staff_key("support")
    fake.support.add_customer("cus_Pdf1")
    invoice = fake.support.create_invoice(customer="cus_Pdf1", total=4900,
                                          created=int(DEC.timestamp()))

    ids, body = found(engine, support, invoice["number"].lower())
    assert ids == ["org_pdf"] and "cus_Pdf1" in body["note"]
    [search] = fake.requests_to("/v1/invoices/search")
    assert search.query["query"] == f'number:"{invoice["number"]}"'
    assert found(engine, support, invoice["id"])[0] == ["org_pdf"]

    ids, body = found(engine, support, "in_Unknown0")
    assert ids == [] and "Stripe has no invoice in_Unknown0" in body["note"]
    fake.fail_next(1, status=500, path="/v1/invoices/search")
    ids, body = found(engine, support, "ZZZZ-0042")
    assert ids == [] and "could not be asked" in body["note"]


def test_without_stripe_keys_numbers_are_not_looked_up_and_the_note_says_so(client, admin,
                                                                             staff_key):
    client.put("/admin/orgs/org_x", headers=admin,
               json={"name": "X", "email": "x@x.example", "plan": "base_usage"})
    ids, body = found(client, staff_key("support"), "ABCD-0001")
    assert ids == [] and "no Stripe keys" in body["note"]
