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
from tests.support.builders import counted
from tests.support.stripe_events import (
    T0,
    WEBHOOK_SECRET,
    charge,
    customer_of,
    deliver,
    event,
    invoice,
    payment_intent,
    refunded_charge,
    subscription,
)


@pytest.fixture
def hooks(database, settings, clock) -> Iterator[TestClient]:
    app = create_app(replace(settings, stripe_webhook_secret=WEBHOOK_SECRET), database=database,
                     metrics=EngineMetrics(), clock=clock, housekeeping=False)
    with TestClient(app) as test_client:
        yield test_client


def test_payment_metrics_move_once_per_attempt_never_per_delivery(hooks, admin):
    org, customer = customer_of(hooks, admin)
    # A declined card: Stripe sends charge.failed and payment_intent.payment_failed for the
    # one attempt. Then a SEPA debit fails, then a card payment goes through.
    declined = charge(customer, 2000, charge_id="ch_declined", payment_intent="pi_1",
                      decline="insufficient_funds")
    intent = payment_intent(customer, 2000, intent_id="pi_1", latest_charge="ch_declined",
                            decline="insufficient_funds")
    first = event("charge.failed", declined, created=T0)
    same = event("payment_intent.payment_failed", intent, created=T0 + 1)
    retried = event("charge.failed", charge(customer, 2000, payment_intent="pi_1",
                                            method="sepa_debit", decline="generic_decline"),
                    created=T0 + 86400)
    paid = event("charge.succeeded", charge(customer, 2000, payment_intent="pi_1"),
                 created=T0 + 2 * 86400)
    for evt in (first, same, retried, paid, first, paid):  # two redeliveries
        assert deliver(hooks, evt).status_code == 200

    assert counted(hooks, "payments_total", {"outcome": "failed", "method": "card"}) == 1
    assert counted(hooks, "payments_total", {"outcome": "failed", "method": "sepa_debit"}) == 1
    assert counted(hooks, "payments_total", {"outcome": "succeeded", "method": "card"}) == 1
    assert counted(hooks, "payment_failures_total", {"reason": "insufficient_funds"}) == 1
    assert counted(hooks, "payment_failures_total", {"reason": "card_declined"}) == 1
    assert counted(hooks, "payment_amount_cents_total", {"outcome": "failed"}) == 4000
    assert counted(hooks, "payment_amount_cents_total", {"outcome": "succeeded"}) == 2000

    body = hooks.get("/v1/payments", params={"org_id": org}, headers=admin).json()
    newest, middle, oldest = body["payments"]
    assert (newest["outcome"], newest["amount_cents"], newest["currency"]) == (
        "succeeded", 2000, "usd")
    assert (oldest["outcome"], oldest["failure_reason"], oldest["method"]) == (
        "failed", "insufficient_funds", "card")
    assert (oldest["charge_id"], oldest["payment_intent_id"]) == ("ch_declined", "pi_1")
    assert oldest["failure_code"] == "insufficient_funds"
    assert oldest["failure_message"] == "Your card has insufficient funds."
    assert oldest["attempted_at"].startswith("2026-11-18T11:06:40")
    assert (middle["method"], middle["failure_reason"]) == ("sepa_debit", "card_declined")
    assert body["totals"] == {"attempts": 3, "succeeded": 1, "failed": 2,
                              "succeeded_cents": 2000, "refunded_cents": 0}


def test_a_failed_intent_arriving_first_is_completed_by_its_charge_event(hooks, admin):
    org, customer = customer_of(hooks, admin)
    intent = payment_intent(customer, 1500, intent_id="pi_2", latest_charge="ch_2",
                            decline="expired_card")
    assert deliver(hooks, event("payment_intent.payment_failed", intent)).status_code == 200
    later = charge(customer, 1500, charge_id="ch_2", payment_intent="pi_2", decline="expired_card")
    effect = deliver(hooks, event("charge.failed", later, created=T0 + 5)).json()["effect"]
    assert "already recorded for charge ch_2" in effect
    (attempt,) = hooks.get("/v1/payments", params={"org_id": org}, headers=admin).json()["payments"]
    assert (attempt["method"], attempt["failure_reason"], attempt["failure_code"]) == (
        "card", "expired_card", "expired_card")
    assert counted(hooks, "payment_failures_total", {"reason": "expired_card"}) == 1


def test_a_zero_amount_invoice_is_not_a_payment_attempt(hooks, admin):
    org, customer = customer_of(hooks, admin)
    response = deliver(hooks, event("invoice.paid", invoice(customer, 0, paid=True)))
    assert response.status_code == 200 and "amount 0" in response.json()["effect"]
    assert hooks.get("/v1/payments", params={"org_id": org}, headers=admin).json()["payments"] == []
    assert counted(hooks, "payments_total", {"outcome": "succeeded", "method": "other"}) == 0


def test_without_a_stripe_key_an_invoice_event_leaves_the_payment_to_its_charge_event(
        hooks, admin):
    org, customer = customer_of(hooks, admin)
    response = deliver(hooks, event("invoice.paid", invoice(customer, 2000, paid=True)))
    assert "recorded from its charge event" in response.json()["effect"]
    assert hooks.get("/v1/payments", params={"org_id": org}, headers=admin).json()["payments"] == []


def test_refunds_are_counted_once_and_shown_against_the_payment(hooks, admin):
    org, customer = customer_of(hooks, admin)
    deliver(hooks, event("charge.succeeded", charge(customer, 9900, charge_id="ch_1",
                                                    payment_intent="pi_paid")))
    # A partial refund, then the rest; this API version lists no refunds on the charge.
    first = event("charge.refunded", refunded_charge(
        "ch_1", customer, amount=9900, amount_refunded=1000, payment_intent="pi_paid"),
        created=T0 + 60)
    second = event("charge.refunded", refunded_charge(
        "ch_1", customer, amount=9900, amount_refunded=9900, payment_intent="pi_paid"),
        created=T0 + 120)
    for evt in (first, second, first):
        assert deliver(hooks, evt).status_code == 200
    assert counted(hooks, "refunds_total") == 2
    assert counted(hooks, "refund_amount_cents_total") == 9900
    body = hooks.get("/v1/payments", params={"org_id": org}, headers=admin).json()
    assert body["payments"][0]["refunded_cents"] == 9900
    assert sorted(r["amount_cents"] for r in body["refunds"]) == [1000, 8900]
    assert {r["charge_id"] for r in body["refunds"]} == {"ch_1"}
    assert body["totals"]["refunded_cents"] == 9900


def test_a_refund_delivered_before_its_charge_still_lands_on_the_payment(hooks, admin):
    org, customer = customer_of(hooks, admin)
    late = refunded_charge("ch_3", customer, amount=2000, amount_refunded=800)
    early = refunded_charge("ch_3", customer, amount=2000, amount_refunded=500)
    deliver(hooks, event("charge.refunded", late, created=T0 + 60))
    deliver(hooks, event("charge.refunded", early, created=T0 + 30))  # older, delivered later
    deliver(hooks, event("charge.succeeded", charge(customer, 2000, charge_id="ch_3")))
    body = hooks.get("/v1/payments", params={"org_id": org}, headers=admin).json()
    assert [r["amount_cents"] for r in body["refunds"]] == [800]
    assert body["payments"][0]["refunded_cents"] == 800
    assert counted(hooks, "refund_amount_cents_total") == 800


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
    deliver(hooks, event("charge.succeeded", charge(customer, 2000), created=old))
    deliver(hooks, event("charge.succeeded", charge(customer, 2000), created=T0))
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
