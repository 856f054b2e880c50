"""Invoice events name no charge: the engine fetches the invoice's payment from Stripe (here the
stand-in, answering as the pinned version does) and records method, decline and ids from it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from fastapi.testclient import TestClient

from billing_engine.api import create_app
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.stripe.circuit_breaker import CircuitBreaker
from billing_engine.stripe.client import API_VERSION, StripeProvider
from tests.support.builders import counted
from tests.support.fake_stripe import CHARGES, INVOICE_PAYMENTS, PAYMENT_INTENTS, FakeStripe
from tests.support.stripe_events import (
    T0,
    WEBHOOK_SECRET,
    charge,
    customer_of,
    deliver,
    event,
    invoice,
    invoice_payment,
    payment_intent,
)


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        yield server


@pytest.fixture
def hooks(database, settings, clock, fake) -> Iterator[TestClient]:
    provider = StripeProvider(
        api_key=fake.api_key, api_base=fake.url, sleep=lambda _: None,
        breaker=CircuitBreaker(failure_threshold=5, clock=lambda: clock().timestamp()),
    )
    app = create_app(replace(settings, stripe_webhook_secret=WEBHOOK_SECRET), database=database,
                     metrics=EngineMetrics(), clock=clock, housekeeping=False,
                     payment_provider=provider)
    with TestClient(app) as test_client:
        yield test_client


def payments(client: TestClient, admin: dict[str, str], org: str) -> list[dict[str, Any]]:
    return client.get("/v1/payments", params={"org_id": org}, headers=admin).json()["payments"]


def a_declined_then_paid_invoice(fake: FakeStripe, customer: str) -> dict[str, Any]:
    """Stripe's side of one invoice: an intent whose first charge was declined (insufficient
    funds) and whose retry by SEPA debit went through."""
    inv = invoice(customer, 4900, paid=False)
    declined = charge(customer, 4900, charge_id="ch_no", payment_intent="pi_inv",
                      decline="insufficient_funds", created=T0)
    fake.add_objects(
        invoice_payment(inv["id"], 4900, intent_id="pi_inv", paid=False),
        payment_intent(customer, 4900, intent_id="pi_inv", latest_charge="ch_no",
                       decline="insufficient_funds"),
        declined,
    )
    return inv


def test_a_failed_invoice_gets_its_method_and_decline_from_the_fetched_charge(
        hooks, admin, fake):
    org, customer = customer_of(hooks, admin)
    inv = a_declined_then_paid_invoice(fake, customer)
    response = deliver(hooks, event("invoice.payment_failed", inv))
    assert response.status_code == 200, response.text
    assert "failed payment of 4900 usd by card (insufficient_funds)" in response.json()["effect"]
    (attempt,) = payments(hooks, admin, org)
    assert (attempt["method"], attempt["failure_reason"], attempt["failure_code"]) == (
        "card", "insufficient_funds", "insufficient_funds")
    assert (attempt["charge_id"], attempt["payment_intent_id"], attempt["invoice_id"]) == (
        "ch_no", "pi_inv", inv["id"])
    assert attempt["attempt_number"] == 1
    assert counted(hooks, "payment_failures_total", {"reason": "insufficient_funds"}) == 1
    # The three GETs, in order, each at the pinned version and with the invoice asked for.
    gets = [r for r in fake.requests if r.method == "GET"]
    assert [r.path for r in gets] == [
        INVOICE_PAYMENTS, PAYMENT_INTENTS + "pi_inv", CHARGES + "ch_no"]
    assert gets[0].query == {"invoice": inv["id"], "limit": "10"}
    # The retrieves take the id alone: none of PaymentIntentRetrieveParams or
    # ChargeRetrieveParams (expand, client_secret) is sent.
    assert (gets[1].query, gets[2].query) == ({}, {})
    assert {r.headers["stripe-version"] for r in gets} == {API_VERSION}

    # Stripe's own charge.failed for the same attempt, delivered afterwards: not a second one.
    again = deliver(hooks, event("charge.failed", fake._retrieve("charge", "ch_no", "charge")))
    assert "already recorded" in again.json()["effect"]
    assert counted(hooks, "payments_total", {"outcome": "failed", "method": "card"}) == 1


def test_a_paid_invoice_links_the_charge_its_charge_event_already_recorded(hooks, admin, fake):
    org, customer = customer_of(hooks, admin)
    inv = invoice(customer, 2000, paid=True, attempt_count=2)
    paid = charge(customer, 2000, charge_id="ch_ok", payment_intent="pi_ok", method="sepa_debit")
    fake.add_objects(invoice_payment(inv["id"], 2000, intent_id="pi_ok", paid=True),
                     payment_intent(customer, 2000, intent_id="pi_ok", latest_charge="ch_ok"),
                     paid)
    deliver(hooks, event("charge.succeeded", paid))
    deliver(hooks, event("invoice.paid", inv, created=T0 + 2))
    (attempt,) = payments(hooks, admin, org)
    assert (attempt["method"], attempt["invoice_id"], attempt["attempt_number"]) == (
        "sepa_debit", inv["id"], 2)
    assert fake.requests_to(INVOICE_PAYMENTS)[0].query["status"] == "paid"
    assert counted(hooks, "payments_total", {"outcome": "succeeded", "method": "sepa_debit"}) == 1


def test_stripe_failing_while_fetching_fails_the_event_and_its_redelivery_records_it(
        hooks, admin, fake):
    org, customer = customer_of(hooks, admin)
    inv = a_declined_then_paid_invoice(fake, customer)
    fake.fail_next(3, status=500, path=INVOICE_PAYMENTS)  # every retry of one delivery
    failed = event("invoice.payment_failed", inv)
    response = deliver(hooks, failed)
    assert response.status_code == 503
    body = response.json()
    assert body["errors"][0]["field"] == "data.object.id"
    assert "could not be fetched from Stripe" in body["errors"][0]["reason"]
    assert len(fake.requests_to(INVOICE_PAYMENTS)) == 3
    assert payments(hooks, admin, org) == []
    assert counted(hooks, "stripe_webhook_events_failing") == 1

    retry = deliver(hooks, failed)  # Stripe redelivers later
    assert retry.status_code == 200 and retry.json()["outcome"] == "handled"
    assert [p["method"] for p in payments(hooks, admin, org)] == ["card"]
    assert counted(hooks, "stripe_webhook_events_failing") == 0


def test_an_open_circuit_is_not_retried_and_the_event_waits_for_stripes_redelivery(
        hooks, admin, fake):
    org, customer = customer_of(hooks, admin)
    fake.fail_next(9, status=500, path=None)
    for _ in range(2):  # two deliveries, three tries each, open the breaker (threshold 5)
        deliver(hooks, event("invoice.payment_failed", invoice(customer, 100, paid=False)))
    seen = len(fake.requests)
    response = deliver(hooks, event("invoice.payment_failed", invoice(customer, 100, paid=False)))
    assert response.status_code == 503 and "circuit_open" in response.json()["errors"][0]["reason"]
    assert len(fake.requests) == seen  # refused before reaching Stripe


def test_an_invoice_stripe_lists_no_payment_for_records_no_attempt(hooks, admin, fake):
    org, customer = customer_of(hooks, admin)
    response = deliver(hooks, event("invoice.payment_failed", invoice(customer, 700, paid=False)))
    assert response.status_code == 200
    assert "Stripe lists no charge for it" in response.json()["effect"]
    assert payments(hooks, admin, org) == []


def test_an_invoice_with_nothing_to_collect_asks_stripe_nothing(hooks, admin, fake):
    org, customer = customer_of(hooks, admin)
    response = deliver(hooks, event("invoice.paid", invoice(customer, 0, paid=True)))
    assert "amount 0" in response.json()["effect"]
    assert fake.requests_to(INVOICE_PAYMENTS) == []
