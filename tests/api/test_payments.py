"""Payments and refunds from Stripe events: recorded once, counted once, shown to support."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from billing_core.settings import SettingsError
from billing_engine.api import create_app
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.settings import Settings
from tests.support.builders import new_org
from tests.support.stripe_events import (
    T0,
    WEBHOOK_SECRET,
    checkout_completed,
    deliver,
    event,
    failed_intent,
    invoice,
    new_id,
    refunded_charge,
    subscription,
)


@pytest.fixture
def hooks(database, settings, clock) -> Iterator[TestClient]:
    app = create_app(replace(settings, stripe_webhook_secret=WEBHOOK_SECRET), database=database,
                     metrics=EngineMetrics(), clock=clock, housekeeping=False)
    with TestClient(app) as test_client:
        yield test_client


def sample(client: TestClient, name: str, labels: dict[str, str] | None = None) -> float:
    value = client.app.state.services.metrics.registry.get_sample_value(name, labels or {})  # type: ignore[attr-defined]
    return 0.0 if value is None else value


def customer_of(client: TestClient, admin: dict[str, str]) -> tuple[str, str]:
    org = new_org(client, admin, plan="base_usage")
    customer = new_id("cus")
    deliver(client, event("checkout.session.completed", checkout_completed(org, customer)))
    return org, customer


def test_payment_metrics_move_once_per_attempt_never_per_delivery(hooks, admin):
    org, customer = customer_of(hooks, admin)
    declined = event("invoice.payment_failed", invoice(
        customer, 2000, paid=False, attempt_count=1,
        payment_intent=failed_intent("pi_1", decline_code="insufficient_funds")), created=T0)
    retried = event("invoice.payment_failed", invoice(
        customer, 2000, paid=False, attempt_count=2, method_types=["sepa_debit"]),
        created=T0 + 86400)
    paid = event("invoice.paid", invoice(customer, 2000, paid=True, attempt_count=3,
                                         method_types=["card"]), created=T0 + 2 * 86400)
    for evt in (declined, retried, paid, declined, paid):  # two redeliveries
        assert deliver(hooks, evt).status_code == 200

    assert sample(hooks, "payments_total", {"outcome": "failed", "method": "card"}) == 1
    assert sample(hooks, "payments_total", {"outcome": "failed", "method": "sepa_debit"}) == 1
    assert sample(hooks, "payments_total", {"outcome": "succeeded", "method": "card"}) == 1
    assert sample(hooks, "payment_failures_total", {"reason": "insufficient_funds"}) == 1
    assert sample(hooks, "payment_failures_total", {"reason": "other"}) == 1
    assert sample(hooks, "payment_amount_cents_total", {"outcome": "failed"}) == 4000
    assert sample(hooks, "payment_amount_cents_total", {"outcome": "succeeded"}) == 2000

    body = hooks.get("/v1/payments", params={"org_id": org}, headers=admin).json()
    newest, middle, oldest = body["payments"]
    assert (newest["outcome"], newest["amount_cents"], newest["currency"]) == (
        "succeeded", 2000, "usd")
    assert (oldest["outcome"], oldest["failure_reason"], oldest["method"]) == (
        "failed", "insufficient_funds", "card")
    assert oldest["failure_message"] == "Your card was declined."
    assert oldest["attempted_at"].startswith("2026-11-18T11:06:40")
    assert middle["failure_reason"] == "other" and middle["attempt_number"] == 2
    assert body["totals"] == {"attempts": 3, "succeeded": 1, "failed": 2,
                              "succeeded_cents": 2000, "refunded_cents": 0}


def test_a_zero_amount_invoice_is_not_a_payment_attempt(hooks, admin):
    org, customer = customer_of(hooks, admin)
    response = deliver(hooks, event("invoice.paid", invoice(customer, 0, paid=True)))
    assert response.status_code == 200 and "amount 0" in response.json()["effect"]
    assert hooks.get("/v1/payments", params={"org_id": org}, headers=admin).json()["payments"] == []
    assert sample(hooks, "payments_total", {"outcome": "succeeded", "method": "other"}) == 0


def test_refunds_are_counted_once_and_shown_against_the_payment(hooks, admin):
    org, customer = customer_of(hooks, admin)
    paid = invoice(customer, 9900, paid=True, method_types=["card"])
    paid["payments"] = {"object": "list", "data": [
        {"object": "invoice_payment", "payment": {"type": "payment_intent",
                                                  "payment_intent": "pi_paid"}}]}
    deliver(hooks, event("invoice.paid", paid))
    # A partial refund, then the rest; this API version lists no refunds on the charge.
    first = event("charge.refunded", refunded_charge(
        "ch_1", customer, amount=9900, amount_refunded=1000, payment_intent="pi_paid"),
        created=T0 + 60)
    second = event("charge.refunded", refunded_charge(
        "ch_1", customer, amount=9900, amount_refunded=9900, payment_intent="pi_paid"),
        created=T0 + 120)
    for evt in (first, second, first):
        assert deliver(hooks, evt).status_code == 200
    assert sample(hooks, "refunds_total") == 2
    assert sample(hooks, "refund_amount_cents_total") == 9900
    body = hooks.get("/v1/payments", params={"org_id": org}, headers=admin).json()
    assert body["payments"][0]["refunded_cents"] == 9900
    assert sorted(r["amount_cents"] for r in body["refunds"]) == [1000, 8900]
    assert body["totals"]["refunded_cents"] == 9900


def test_listed_refunds_are_recorded_by_their_stripe_id(hooks, admin):
    org, customer = customer_of(hooks, admin)
    refund = {"id": "re_1", "object": "refund", "amount": 500, "currency": "usd",
              "reason": "requested_by_customer", "status": "succeeded", "created": T0}
    charge = refunded_charge("ch_2", customer, amount=2000, amount_refunded=500,
                             refunds=[refund])
    deliver(hooks, event("charge.refunded", charge))
    # A second event for another refund on the same charge lists both.
    later = refunded_charge("ch_2", customer, amount=2000, amount_refunded=800, refunds=[
        refund, {**refund, "id": "re_2", "amount": 300, "reason": "duplicate"}])
    deliver(hooks, event("charge.refunded", later, created=T0 + 60))
    assert sample(hooks, "refunds_total") == 2
    assert sample(hooks, "refund_amount_cents_total") == 800
    refunds = hooks.get("/v1/payments", params={"org_id": org}, headers=admin).json()["refunds"]
    assert {(r["refund"], r["amount_cents"], r["reason"]) for r in refunds} == {
        ("re_1", 500, "requested_by_customer"), ("re_2", 300, "duplicate")}


def test_payments_for_an_unknown_org_is_a_404_naming_the_field(admin, hooks):
    response = hooks.get("/v1/payments", params={"org_id": "org_nobody"}, headers=admin)
    assert response.status_code == 404 and response.json()["errors"][0]["field"] == "org_id"
    assert hooks.get("/v1/payments", headers=admin).status_code == 422


def test_billing_view_carries_the_subscription_and_its_period(hooks, admin):
    org, customer = customer_of(hooks, admin)
    assert hooks.get("/v1/billing", params={"org_id": org},
                     headers=admin).json()["subscription"] is None
    deliver(hooks, event("customer.subscription.created", subscription(
        "sub_v", customer, "trialing", price="price_base_usage_monthly",
        cancel_at_period_end=True)))
    view = hooks.get("/v1/billing", params={"org_id": org}, headers=admin).json()["subscription"]
    assert view["id"] == "sub_v" and view["status"] == "trialing"
    assert view["current_period_start"].startswith("2026-11-18T11:06:40")
    assert view["current_period_end"].startswith("2026-12-18")
    assert view["cancel_at_period_end"] is True


def test_retention_deletes_payment_records_older_than_the_window(hooks, admin, clock):
    org, customer = customer_of(hooks, admin)
    old = T0 - 100 * 86400
    deliver(hooks, event("invoice.paid", invoice(customer, 2000, paid=True), created=old))
    deliver(hooks, event("invoice.paid", invoice(customer, 2000, paid=True), created=T0))
    deliver(hooks, event("charge.refunded", refunded_charge(
        "ch_old", customer, amount=2000, amount_refunded=2000), created=old))
    retention = hooks.app.state.services.retention  # type: ignore[attr-defined]
    result = retention.run()
    assert retention.days == 90
    assert (result["payment_attempts_deleted"], result["refunds_deleted"]) == (1, 1)
    body = hooks.get("/v1/payments", params={"org_id": org}, headers=admin).json()
    assert [p["attempted_at"][:10] for p in body["payments"]] == ["2026-11-18"]
    assert body["refunds"] == []
    # Hourly at most: a second housekeeping round right away does nothing.
    assert retention.run_if_due() is not None
    assert retention.run_if_due() is None
    # Inbox rows go once their event was done longer ago than the window.
    clock.advance(days=91)
    assert retention.run()["stripe_events_deleted"] >= 4


def test_the_retention_window_is_read_from_the_environment_and_must_be_positive():
    assert Settings.from_env({}).payment_retention_days == 90
    assert Settings.from_env({"PAYMENT_RETENTION_DAYS": "30"}).payment_retention_days == 30
    with pytest.raises(SettingsError, match="PAYMENT_RETENTION_DAYS"):
        Settings.from_env({"PAYMENT_RETENTION_DAYS": "0"})
