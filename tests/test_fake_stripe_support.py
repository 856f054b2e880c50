"""The support tools' part of the Stripe stand-in speaks Stripe as stripe-python 16 types it: every
field it answers is a field of the library's object for the pinned API version, and the fields
the engine reads are among them. A stand-in that drifted from Stripe would pass tests of code
that fails against Stripe."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import stripe
from stripe._customer import Customer
from stripe._customer_balance_transaction import CustomerBalanceTransaction
from stripe._invoice import Invoice
from stripe._subscription import Subscription
from stripe._subscription_item import SubscriptionItem
from stripe.billing._meter import Meter
from stripe.billing._meter_event_summary import MeterEventSummary

from billing_engine.stripe.client import API_VERSION
from tests.support.fake_stripe import FakeStripe

# Read by the engine: accounts.py, resync/service.py, webhooks/payloads.subscription_state.
READ = {
    Customer: {"id", "balance", "deleted"},
    Subscription: {"id", "customer", "status", "items", "cancel_at_period_end"},
    SubscriptionItem: {"price", "current_period_start", "current_period_end"},
    Invoice: {"id", "customer", "status", "number", "total", "amount_due", "period_start",
              "created", "metadata", "hosted_invoice_url"},
    CustomerBalanceTransaction: {"id", "amount", "ending_balance", "customer"},
    Meter: {"id", "event_name"},
    MeterEventSummary: {"aggregated_value", "start_time", "end_time"},
}


def fields(cls: type) -> set[str]:
    found: set[str] = set()
    for klass in cls.__mro__:
        found |= {k for k in getattr(klass, "__annotations__", {}) if k.islower()}
    return found


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        yield server


def client(fake: FakeStripe) -> stripe.StripeClient:
    base = {"api": fake.url}
    return stripe.StripeClient(fake.api_key, stripe_version=API_VERSION,
                               base_addresses=base,  # type: ignore[arg-type]
                               max_network_retries=0)


def check(obj: dict[str, Any], cls: type) -> None:
    known = fields(cls)
    assert set(obj) - known == set(), f"{cls.__name__} has no {sorted(set(obj) - known)}"
    assert READ[cls] <= known


def test_every_field_the_stand_in_answers_is_one_stripe_types(fake):
    fake.support.add_customer("cus_shape")
    meter = fake.support.add_meter("instance_minutes")
    fake.support.add_subscription(customer="cus_shape", price="price_team_monthly",
                                  period_start=1_764_547_200, period_end=1_767_225_600)
    stripe_client = client(fake)
    made = stripe_client.v1.customers.balance_transactions.create(
        "cus_shape", {"amount": -250, "currency": "usd", "metadata": {"credit_id": "7"}},
        options={"idempotency_key": "credit:7:cus_shape"})
    assert isinstance(made, CustomerBalanceTransaction) and made.amount == -250
    invoice = fake.support.create_invoice(customer="cus_shape", total=1000,
                                          created=1_767_225_600)
    assert (invoice["amount_due"], invoice["starting_balance"]) == (750, -250)

    customer = stripe_client.v1.customers.retrieve("cus_shape")
    check(customer.to_dict(), Customer)
    check(made.to_dict(), CustomerBalanceTransaction)
    [subscription] = stripe_client.v1.subscriptions.list({"customer": "cus_shape"}).data
    check(subscription.to_dict(), Subscription)
    check(subscription.to_dict()["items"]["data"][0], SubscriptionItem)
    check(stripe_client.v1.invoices.retrieve(invoice["id"]).to_dict(), Invoice)
    [found] = stripe_client.v1.invoices.search({"query": f'number:"{invoice["number"]}"'}).data
    assert found.id == invoice["id"]
    [listed] = stripe_client.v1.billing.meters.list().data
    check(listed.to_dict(), Meter)
    [summary] = stripe_client.v1.billing.meters.event_summaries.list(
        meter, {"customer": "cus_shape", "start_time": 0, "end_time": 60}).data
    check(summary.to_dict(), MeterEventSummary)
    assert {r.headers["stripe-version"] for r in fake.requests} == {API_VERSION}


def test_stripe_refuses_what_it_refuses(fake):
    stripe_client = client(fake)
    with pytest.raises(stripe.InvalidRequestError, match="No such customer"):
        stripe_client.v1.customers.retrieve("cus_nobody")
    fake.support.add_customer("cus_a")
    stripe_client.v1.customers.balance_transactions.create(
        "cus_a", {"amount": -100, "currency": "usd"}, options={"idempotency_key": "k"})
    with pytest.raises(stripe.IdempotencyError):
        stripe_client.v1.customers.balance_transactions.create(
            "cus_a", {"amount": -200, "currency": "usd"}, options={"idempotency_key": "k"})
    assert fake.support.balance_of("cus_a") == -100
    # Canceled subscriptions only with status=all, as Stripe lists them.
    fake.support.add_subscription(customer="cus_a", price="p", status="canceled",
                                  period_start=0, period_end=60)
    assert stripe_client.v1.subscriptions.list({"customer": "cus_a"}).data == []
    assert len(stripe_client.v1.subscriptions.list({"customer": "cus_a", "status": "all"}
                                                   ).data) == 1
