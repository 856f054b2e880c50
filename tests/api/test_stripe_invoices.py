"""Our invoice learns Stripe's: invoice.finalized, .paid, .payment_failed and .voided store
Stripe's number, status, amount paid and invoice page, link it to our invoice of that period, and
/v1/invoices shows both side by side, whichever was written first."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from billing_engine.api import create_app
from billing_engine.invoicing.rules import stripe_invoice_period
from billing_engine.operability.metrics import EngineMetrics
from tests.support.builders import ADMIN_HEADERS, new_org
from tests.support.stripe_events import (
    T0,
    WEBHOOK_SECRET,
    checkout_completed,
    deliver,
    event,
    invoice,
    new_id,
)

NOV_CLOSES = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
NOV_START, DEC_START = 1_793_491_200, 1_796_083_200  # 2026-11-01, 2026-12-01 (UTC)


@pytest.fixture
def hooks(database, settings, clock) -> Iterator[TestClient]:
    app = create_app(replace(settings, stripe_webhook_secret=WEBHOOK_SECRET), database=database,
                     metrics=EngineMetrics(), clock=clock, housekeeping=False)
    with TestClient(app) as test_client:
        yield test_client


def linked(client: TestClient, admin: dict[str, str]) -> tuple[str, str]:
    org = new_org(client, admin, plan="base_usage")
    customer = new_id("cus")
    deliver(client, event("checkout.session.completed", checkout_completed(org, customer)))
    return org, customer


def invoices(client: TestClient, org: str) -> dict:
    response = client.get("/v1/invoices", params={"org_id": org}, headers=ADMIN_HEADERS)
    assert response.status_code == 200, response.text
    return response.json()


def november(customer: str, **fields) -> dict:
    return invoice(customer, 2000, period_start=NOV_START, period_end=DEC_START, **fields)


def test_a_paid_stripe_invoice_is_linked_to_ours_with_its_number_and_page(hooks, admin, clock):
    org, customer = linked(hooks, admin)
    clock.now = NOV_CLOSES
    assert hooks.post("/admin/invoices/close", params={"period": "2026-11"},
                      headers=admin).status_code == 200
    stripe_invoice = november(customer, paid=False, status="open", number="ACME-0042")
    finalized = deliver(hooks, event("invoice.finalized", stripe_invoice, created=DEC_START + 60))
    assert finalized.json()["effect"] == "Stripe invoice ACME-0042 open, linked to our 2026-11"
    paid = {**stripe_invoice, "status": "paid", "amount_paid": 2000, "amount_remaining": 0}
    deliver(hooks, event("invoice.paid", paid, created=DEC_START + 120))

    body = invoices(hooks, org)
    (ours,) = body["invoices"]
    assert (ours["status"], ours["stripe_invoice_id"]) == ("paid", stripe_invoice["id"])
    linked_view = ours["stripe_invoice"]
    assert (linked_view["number"], linked_view["status"], linked_view["amount_paid_cents"]) == (
        "ACME-0042", "paid", 2000)
    assert linked_view["hosted_invoice_url"] == stripe_invoice["hosted_invoice_url"]
    assert [s["id"] for s in body["stripe_invoices"]] == [stripe_invoice["id"]]


def test_an_older_event_delivered_late_does_not_undo_a_newer_one(hooks, admin, clock):
    org, customer = linked(hooks, admin)
    stripe_invoice = november(customer, paid=True)
    deliver(hooks, event("invoice.voided", {**stripe_invoice, "status": "void"},
                         created=DEC_START + 300))
    late = deliver(hooks, event("invoice.finalized", {**stripe_invoice, "status": "open"},
                                created=DEC_START + 60))
    assert "a newer event already recorded it" in late.json()["effect"]
    (shown,) = invoices(hooks, org)["stripe_invoices"]
    assert shown["status"] == "void"


def test_stripes_invoice_shows_beside_ours_when_our_period_closes_after_its_event(
        hooks, admin, clock):
    org, customer = linked(hooks, admin)
    stripe_invoice = november(customer, paid=False, status="open")
    response = deliver(hooks, event("invoice.payment_failed", stripe_invoice))
    assert response.status_code == 200
    assert "recorded" in response.json()["effect"]
    clock.now = NOV_CLOSES
    hooks.post("/admin/invoices/close", params={"period": "2026-11"}, headers=admin)
    (ours,) = invoices(hooks, org)["invoices"]
    assert ours["stripe_invoice_id"] is None  # not linked in our table: it closed later
    assert ours["stripe_invoice"]["id"] == stripe_invoice["id"]  # but shown by its period


def test_a_first_invoice_billed_in_advance_names_no_period_and_links_nothing(hooks, admin):
    org, customer = linked(hooks, admin)
    first = invoice(customer, 2000, paid=True, period_start=T0, period_end=T0)
    deliver(hooks, event("invoice.paid", first))
    (shown,) = invoices(hooks, org)["stripe_invoices"]
    assert shown["period"] is None and shown["amount_paid_cents"] == 2000


def test_a_hosted_page_that_is_not_https_is_not_shown(hooks, admin):
    org, customer = linked(hooks, admin)
    deliver(hooks, event("invoice.finalized", november(
        customer, paid=False, status="open") | {"hosted_invoice_url": "javascript:alert(1)"}))
    (shown,) = invoices(hooks, org)["stripe_invoices"]
    assert shown["hosted_invoice_url"] is None


@pytest.mark.parametrize(("metadata", "start", "end", "expected"), [
    ("2026-10", NOV_START, DEC_START, "2026-10"),  # our period in metadata wins
    (None, NOV_START, DEC_START, "2026-11"),
    (None, DEC_START, DEC_START, None),  # empty period: billed in advance
    ("2026-13", NOV_START, DEC_START, "2026-11"),  # not a month: ignored
    (None, None, DEC_START, None),
])
def test_the_period_a_stripe_invoice_bills(metadata, start, end, expected):
    def at(value):
        return None if value is None else datetime.fromtimestamp(value, UTC)

    assert stripe_invoice_period(metadata_period=metadata, period_start=at(start),
                                 period_end=at(end)) == expected
