"""POST /webhooks/stripe: verified, stored before any effect, applied once, in Stripe's order."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from billing_engine.api import create_app
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.stripe.webhooks.payloads import subscription_state
from billing_engine.stripe.webhooks.signature import SignatureFailure, SignatureRejected, verify
from billing_engine.subscriptions.rules import Verdict, compare
from billing_engine.subscriptions.store import (
    SubscriptionStore,
    save_subscription,
    subscription_by_id,
)
from devstack.servers import wait_for
from tests.support.builders import counted, new_org
from tests.support.stripe_events import (
    T0,
    WEBHOOK_SECRET,
    charge,
    checkout_completed,
    deliver,
    event,
    invoice,
    new_id,
    refunded_charge,
    signature_header,
    subscription,
)


@pytest.fixture
def hooks(database, settings, clock) -> Iterator[TestClient]:
    """The engine with a webhook secret, on each backend we ship."""
    app = create_app(replace(settings, stripe_webhook_secret=WEBHOOK_SECRET), database=database,
                     metrics=EngineMetrics(), clock=clock, housekeeping=False)
    with TestClient(app) as test_client:
        yield test_client


def stored(client: TestClient, admin: dict[str, str], event_id: str) -> dict | None:
    response = client.get(f"/admin/webhooks/{event_id}", headers=admin)
    return None if response.status_code == 404 else response.json()


def linked_org(client: TestClient, admin: dict[str, str], *, plan: str = "free") -> tuple[str, str]:
    org = new_org(client, admin, plan=plan)
    customer = new_id("cus")
    response = deliver(client, event("checkout.session.completed",
                                     checkout_completed(org, customer)))
    assert response.status_code == 200 and response.json()["outcome"] == "handled"
    return org, customer


def test_a_subscription_event_puts_the_org_on_its_plan_and_entitlements_follow(hooks, admin):
    org, customer = linked_org(hooks, admin)
    assert hooks.get("/v1/billing", params={"org_id": org}, headers=admin).json()["org"][
        "stripe_customer_id"] == customer
    response = deliver(hooks, event("customer.subscription.created",
                                    subscription("sub_a", customer, "active")))
    assert response.status_code == 200, response.text
    assert response.json()["outcome"] == "handled"
    entitlements = hooks.get(f"/v1/entitlements/{org}", headers=admin).json()
    assert entitlements["plan"] == "team" and entitlements["subscription_status"] == "active"
    assert entitlements["limits"]["max_concurrent_instances"] == 200
    assert hooks.get("/v1/billing", params={"org_id": org},
                     headers=admin).json()["plan"]["code"] == "team"
    assert counted(hooks, "stripe_webhook_events_total", {"outcome": "handled"}) == 2


def test_a_past_due_subscription_keeps_its_limits_but_stops_overage(hooks, admin):
    org, customer = linked_org(hooks, admin)
    deliver(hooks, event("customer.subscription.created", subscription(
        "sub_b", customer, "active", price="price_base_usage_monthly")))
    deliver(hooks, event("customer.subscription.updated",
                         subscription("sub_b", customer, "past_due",
                                      price="price_base_usage_monthly"), created=T0 + 60))
    entitlements = hooks.get(f"/v1/entitlements/{org}", headers=admin).json()
    assert (entitlements["plan"], entitlements["subscription_status"]) == ("base_usage", "past_due")
    assert entitlements["features"]["overage_allowed"] is False


@pytest.mark.parametrize(("reason", "make_headers"), [
    ("missing", lambda body: {}),
    ("invalid", lambda body: {"Stripe-Signature": signature_header(body, secret="whsec_wrong")}),
    ("invalid", lambda body: {"Stripe-Signature": "t=oops,v1=nothex"}),
    ("stale", lambda body: {"Stripe-Signature": signature_header(
        body, timestamp=int(time.time()) - 301)}),
    # Signed with the right secret, dated ahead: a replay window Stripe's own check leaves open.
    ("future", lambda body: {"Stripe-Signature": signature_header(
        body, timestamp=int(time.time()) + 600)}),
])
def test_missing_forged_and_stale_signatures_are_refused_and_nothing_is_stored(
        hooks, admin, reason, make_headers):
    evt = event("customer.subscription.created", subscription("sub_x", "cus_x"))
    body = json.dumps(evt)
    response = hooks.post("/webhooks/stripe", content=body,
                          headers={"Content-Type": "application/json", **make_headers(body)})
    assert response.status_code == 400
    error = response.json()["errors"][0]
    assert error["field"] == "Stripe-Signature" and error["reason"].startswith(f"{reason}:")
    assert stored(hooks, admin, evt["id"]) is None
    assert counted(hooks, "stripe_webhook_signature_failures_total", {"reason": reason}) == 1
    assert counted(hooks, "stripe_webhook_events_total", {"outcome": "handled"}) == 0


def test_a_body_changed_after_signing_is_refused(hooks, admin):
    evt = event("invoice.paid", invoice("cus_x", 2000, paid=True))
    header = signature_header(json.dumps(evt))
    evt["data"]["object"]["amount_paid"] = 1
    response = hooks.post("/webhooks/stripe", content=json.dumps(evt),
                          headers={"Stripe-Signature": header})
    assert response.status_code == 400
    assert response.json()["errors"][0]["reason"].startswith("invalid:")


def test_a_signed_body_that_is_not_an_event_names_the_field(hooks):
    body = json.dumps({"object": "event", "type": "invoice.paid"})
    response = hooks.post("/webhooks/stripe", content=body,
                          headers={"Stripe-Signature": signature_header(body)})
    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == "id"
    body = "not json"
    response = hooks.post("/webhooks/stripe", content=body,
                          headers={"Stripe-Signature": signature_header(body)})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "body"


def test_a_redelivered_event_is_acknowledged_without_a_second_effect(hooks, admin):
    org, customer = linked_org(hooks, admin)
    paid = event("charge.succeeded", charge(customer, 2000))
    first = deliver(hooks, paid)
    assert first.status_code == 200 and first.json()["outcome"] == "handled"
    for _ in range(2):
        again = deliver(hooks, paid)
        assert again.status_code == 200 and again.json()["outcome"] == "duplicate"
    assert counted(hooks, "payments_total", {"outcome": "succeeded", "method": "card"}) == 1
    assert counted(hooks, "stripe_webhook_events_total", {"outcome": "duplicate"}) == 2
    assert len(hooks.get("/v1/payments", params={"org_id": org},
                         headers=admin).json()["payments"]) == 1


def test_an_older_subscription_state_delivered_late_never_overwrites_a_newer_one(hooks, admin):
    org, customer = linked_org(hooks, admin)
    created = event("customer.subscription.created",
                    subscription("sub_o", customer, "active"), created=T0)
    updated = event("customer.subscription.updated",
                    subscription("sub_o", customer, "past_due"), created=T0 + 3600)
    assert deliver(hooks, updated).json()["outcome"] == "handled"
    late = deliver(hooks, created)
    assert late.status_code == 200 and late.json()["effect"].startswith("stale")
    assert hooks.get(f"/v1/entitlements/{org}",
                     headers=admin).json()["subscription_status"] == "past_due"

    deleted = event("customer.subscription.deleted",
                    subscription("sub_o", customer, "canceled"), created=T0 + 7200)
    assert deliver(hooks, deleted).json()["outcome"] == "handled"
    revived = event("customer.subscription.updated",
                    subscription("sub_o", customer, "active"), created=T0 + 7200)
    assert deliver(hooks, revived).json()["effect"].startswith("stale")
    entitlements = hooks.get(f"/v1/entitlements/{org}", headers=admin).json()
    assert entitlements["subscription_status"] == "canceled"
    # Nobody pays for the team plan any more: back on the default plan and its limits.
    assert (entitlements["plan"], entitlements["effective_plan"]) == ("free", "free")


def test_unknown_event_types_are_stored_and_acknowledged(hooks, admin):
    evt = event("customer.tax_id.created", {"id": "txi_1", "object": "tax_id",
                                            "customer": "cus_q"})
    response = deliver(hooks, evt)
    assert response.status_code == 200 and response.json()["outcome"] == "ignored"
    assert stored(hooks, admin, evt["id"])["status"] == "ignored"
    assert deliver(hooks, evt).json()["outcome"] == "duplicate"
    assert counted(hooks, "stripe_webhook_events_total", {"outcome": "ignored"}) == 1


def test_a_subscription_arriving_before_checkout_waits_then_applies_when_checkout_links(
        hooks, admin):
    org = new_org(hooks, admin, plan="free")
    customer = new_id("cus")
    early = event("customer.subscription.created", subscription("sub_e", customer, "active"))
    response = deliver(hooks, early)
    assert response.status_code == 202
    assert response.json()["error"]["field"] == "data.object.customer"
    webhooks = hooks.app.state.services.webhooks  # type: ignore[attr-defined]
    webhooks.refresh_gauges()
    assert counted(hooks, "stripe_webhook_events_failing") == 1
    failing = hooks.get("/debug/webhooks/failing", headers=admin).json()
    assert [e["event_id"] for e in failing["events"]] == [early["id"]]
    assert customer in failing["events"][0]["last_error"]

    deliver(hooks, event("checkout.session.completed", checkout_completed(org, customer)))
    assert hooks.get(f"/v1/entitlements/{org}", headers=admin).json()["plan"] == "team"
    assert stored(hooks, admin, early["id"])["status"] == "handled"
    assert counted(hooks, "stripe_webhook_events_failing") == 0
    assert hooks.get("/debug/webhooks/failing", headers=admin).json()["count"] == 0
    # Stripe's own retry of the early event is now a duplicate.
    assert deliver(hooks, early).json()["outcome"] == "duplicate"


def test_replay_applies_a_waiting_event_once_its_org_exists(hooks, admin):
    evt = event("charge.succeeded", {**charge("cus_later", 4900),
                                     "metadata": {"org_id": "org_later"}})
    assert deliver(hooks, evt).status_code == 202
    still = hooks.post(f"/admin/webhooks/{evt['id']}/replay", headers=admin)
    assert still.status_code == 409
    assert "org_later" in still.json()["errors"][0]["reason"]
    assert hooks.post(f"/admin/webhooks/{evt['id']}/replay").status_code == 401

    new_org(hooks, admin, org_id="org_later")
    replayed = hooks.post(f"/admin/webhooks/{evt['id']}/replay", headers=admin)
    assert replayed.status_code == 200 and replayed.json()["outcome"] == "handled"
    record = stored(hooks, admin, evt["id"])
    assert (record["status"], record["attempts"], record["org_id"]) == ("handled", 3, "org_later")
    # Found by metadata, the org is now linked to the customer for later events.
    assert hooks.get("/v1/billing", params={"org_id": "org_later"}, headers=admin).json()["org"][
        "stripe_customer_id"] == "cus_later"
    again = hooks.post(f"/admin/webhooks/{evt['id']}/replay", headers=admin)
    assert again.status_code == 409 and again.json()["errors"][0]["field"] == "event_id"
    assert counted(hooks, "payments_total", {"outcome": "succeeded", "method": "card"}) == 1
    missing = hooks.post("/admin/webhooks/evt_nothing/replay", headers=admin)
    assert missing.status_code == 404 and missing.json()["errors"][0]["field"] == "event_id"


def test_a_price_with_no_plan_fails_loudly_and_stripe_is_asked_to_retry(hooks, admin):
    org, customer = linked_org(hooks, admin)
    evt = event("customer.subscription.created",
                subscription("sub_p", customer, "active", price="price_not_in_plans"))
    for attempt in (1, 2):
        response = deliver(hooks, evt)
        assert response.status_code == 500
        assert response.json()["errors"][0]["field"] == "data.object.items"
        record = stored(hooks, admin, evt["id"])
        assert record["status"] == "failed" and record["attempts"] == attempt
        assert "price_not_in_plans" in record["last_error"]
    assert hooks.get(f"/v1/entitlements/{org}", headers=admin).json()["plan"] == "free"
    assert counted(hooks, "stripe_webhook_events_total", {"outcome": "failed"}) == 2


def test_without_a_webhook_secret_the_endpoint_says_so_and_stores_nothing(client, admin):
    evt = event("invoice.paid", invoice("cus_x", 100, paid=True))
    response = deliver(client, evt)
    assert response.status_code == 503
    assert response.json()["error"] == "webhooks_not_configured"
    assert "STRIPE_WEBHOOK_SECRET" in response.json()["message"]
    assert stored(client, admin, evt["id"]) is None


def test_housekeeping_keeps_the_failing_gauges_current(pg_database, settings, clock, admin):
    configured = replace(settings, stripe_webhook_secret=WEBHOOK_SECRET,
                         housekeeping_interval_seconds=0.05)
    app = create_app(configured, database=pg_database, metrics=EngineMetrics(), clock=clock)
    with TestClient(app) as hooks:
        waiting = event("invoice.paid", invoice("cus_nobody", 700, paid=True))
        assert deliver(hooks, waiting).status_code == 202
        clock.advance(minutes=10)
        wait_for(lambda: counted(hooks, "stripe_webhook_oldest_failing_age_seconds") == 600,
                 timeout=10, what="housekeeping to refresh the oldest failing age")
        assert counted(hooks, "stripe_webhook_events_failing") == 1
        text = hooks.get("/metrics").text
        assert "stripe_webhook_events_failing 1.0" in text


def test_a_signature_dated_within_the_tolerance_either_way_is_accepted(hooks, admin):
    for offset in (-250, 250):
        evt = event("customer.subscription.created", subscription("sub_x", "cus_x"))
        response = deliver(hooks, evt, timestamp=int(time.time()) + offset)
        assert response.status_code in (200, 202), response.text
    assert counted(hooks, "stripe_webhook_signature_failures_total", {"reason": "future"}) == 0


def test_the_future_edge_is_300_seconds_against_the_clock_passed_in():
    body = json.dumps(event("invoice.paid", {"object": "invoice"}))
    now = 1_800_000_000
    verify(body.encode(), signature_header(body, timestamp=now + 300), WEBHOOK_SECRET,
           now=float(now))
    with pytest.raises(SignatureRejected) as refused:
        verify(body.encode(), signature_header(body, timestamp=now + 301), WEBHOOK_SECRET,
               now=float(now))
    assert refused.value.failure is SignatureFailure.FUTURE


HUGE = [
    ("invoice.paid", "amount_paid", 10**30),
    ("invoice.paid", "amount_paid", 2**63),
    ("invoice.paid", "amount_due", -5),
    ("invoice.payment_failed", "amount_due", 10**30),
    ("invoice.paid", "attempt_count", 2**40),
    ("invoice.paid", "amount_paid", 12.5),
    ("charge.refunded", "amount_refunded", 10**30),
    ("charge.succeeded", "amount", 2**64),
]


@pytest.mark.parametrize(("event_type", "field", "value"), HUGE,
                         ids=[f"{t}-{f}-{v}" for t, f, v in HUGE])
def test_an_amount_no_column_can_hold_is_refused_naming_the_field_for_a_linked_org(
        hooks, admin, event_type, field, value):
    org, customer = linked_org(hooks, admin)
    if event_type.startswith("charge."):
        obj = refunded_charge(new_id("ch"), customer, amount=500, amount_refunded=500)
    else:
        obj = invoice(customer, 2000, paid=event_type == "invoice.paid")
    obj[field] = value
    evt = event(event_type, obj)
    response = deliver(hooks, evt)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_event"
    assert body["errors"][0]["field"] == f"data.object.{field}"
    assert stored(hooks, admin, evt["id"]) is None
    payments = hooks.get("/v1/payments", params={"org_id": org}, headers=admin)
    assert payments.status_code == 200 and payments.json()["payments"] == []
    assert counted(hooks, "payments_total", {"outcome": "succeeded", "method": "other"}) == 0


ODD_EVENTS = [
    event("invoice.paid", {"object": "invoice"}, event_id="evt_\x00"),
    event("invoice\x00paid", {"object": "invoice"}),
    event("invoice.paid", {"object": "invoice"}, created=10**20),
    event("invoice.paid", {"object": "invoice"}, created=253402300800),  # the year 10000
    event("invoice.paid", {"object": "invoice", "customer": "cus_\x00"}),
    event("invoice.paid", {"object": "invoice", "customer": {"id": "\x07"}}),
    {**event("invoice.paid", {}), "data": []},
    {**event("invoice.paid", {}), "id": 12},
]


@pytest.mark.parametrize("evt", ODD_EVENTS, ids=range(len(ODD_EVENTS)))
def test_a_signed_delivery_that_is_not_a_storable_event_is_refused_with_the_field(hooks, evt):
    response = deliver(hooks, evt)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "invalid_event" and body["errors"][0]["field"]


def test_an_event_at_another_api_version_is_counted_and_still_handled(hooks, admin, caplog):
    org, customer = linked_org(hooks, admin)
    older = {**event("charge.succeeded", charge(customer, 700)), "api_version": "2025-03-31.basil"}
    assert deliver(hooks, older).json()["outcome"] == "handled"
    assert deliver(hooks, older).json()["outcome"] == "duplicate"  # a redelivery counts nothing
    garbled = {**event("invoice.paid", invoice(customer, 0, paid=True)), "api_version": 42}
    assert deliver(hooks, garbled).json()["outcome"] == "handled"
    assert deliver(hooks, event("invoice.paid", invoice(customer, 0, paid=True))).status_code == 200
    assert counted(hooks, "stripe_webhook_events_other_version_total", {"relation": "older"}) == 1
    assert counted(hooks, "stripe_webhook_events_other_version_total",
                  {"relation": "unknown"}) == 1
    assert counted(hooks, "stripe_webhook_events_other_version_total", {"relation": "newer"}) == 0
    warned = [r for r in caplog.records if r.getMessage() == "stripe event at another API version"]
    assert [(r.api_version, r.pinned_version) for r in warned] == [  # type: ignore[attr-defined]
        ("2025-03-31.basil", "2026-10-28.endive"), ("missing", "2026-10-28.endive")]


@pytest.mark.parametrize(("version", "relation"), [
    ("2026-10-28.endive", None), ("2025-03-31.basil", "older"), ("2024-06-20", "older"),
    ("2027-01-15.fig", "newer"), ("2026-10-28.other", "unknown"), (None, "unknown"),
    ("yesterday", "unknown"),
])
def test_version_relation_is_a_bounded_label(version, relation):
    from billing_engine.stripe.webhooks.payloads import version_relation

    assert version_relation(version, "2026-10-28.endive") == relation



def test_a_subscription_saved_for_another_org_belongs_to_that_org_alone(hooks, admin, database):
    """The org is part of a subscription's key: a subscription whose events now resolve to
    another org (its customer was linked there) is that org's, and no longer the first's."""
    first, second = new_org(hooks, admin, plan="free"), new_org(hooks, admin, plan="free")
    state = subscription_state(subscription("sub_moved", "cus_moved", "active"),
                               event_created=datetime.fromtimestamp(T0, UTC))
    with database.engine.begin() as conn:
        save_subscription(conn, state, org_id=first, plan="team", event_id="evt_1",
                          now=datetime.fromtimestamp(T0, UTC))
    with database.engine.begin() as conn:
        save_subscription(conn, state, org_id=second, plan="team", event_id="evt_2",
                          now=datetime.fromtimestamp(T0 + 60, UTC))
    held = SubscriptionStore(database).subscriptions_of([first, second])
    assert {org: [s.subscription_id for s in subs] for org, subs in held.items()} == {
        second: ["sub_moved"]}


def test_an_older_state_arriving_after_the_subscription_moved_org_is_still_stale(
        hooks, admin, database):
    first, second = new_org(hooks, admin, plan="free"), new_org(hooks, admin, plan="free")
    newer = subscription_state(subscription("sub_late", "cus_late", "past_due"),
                               event_created=datetime.fromtimestamp(T0 + 3600, UTC))
    older = subscription_state(subscription("sub_late", "cus_late", "active"),
                               event_created=datetime.fromtimestamp(T0, UTC))
    with database.engine.begin() as conn:
        save_subscription(conn, newer, org_id=first, plan="team", event_id="evt_newer",
                          now=datetime.fromtimestamp(T0 + 3600, UTC))
        # The first event about it at the other org is judged against the state held elsewhere.
        held = subscription_by_id(conn, "sub_late", org_id=second)
    assert held is not None and held[1] == "evt_newer"
    assert compare(held[0], older) is Verdict.STALE
