"""The fake Stripe server answers the official library the way Stripe does (for what we use)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
import stripe

from tests.support.fake_stripe import INVOICES, METER_EVENTS, FakeStripe


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        yield server


@pytest.fixture
def client(fake: FakeStripe) -> stripe.StripeClient:
    return stripe.StripeClient(fake.api_key, base_addresses={"api": fake.url},
                               max_network_retries=0)


def event(identifier: str, value: str = "5", customer: str = "cus_1") -> dict:
    return {"event_name": "instance_minutes", "identifier": identifier,
            "payload": {"stripe_customer_id": customer, "value": value}}


def test_a_meter_event_is_created_once_per_idempotency_key(client, fake):
    first = client.v1.billing.meter_events.create(event("e1"), options={"idempotency_key": "k1"})
    again = client.v1.billing.meter_events.create(event("e1"), options={"idempotency_key": "k1"})
    assert first.identifier == again.identifier == "e1"
    assert len(fake.meter_events) == 1
    assert [r.status for r in fake.requests_to(METER_EVENTS)] == [200, 200]


def test_the_same_key_with_other_parameters_is_an_idempotency_error(client, fake):
    client.v1.billing.meter_events.create(event("e1"), options={"idempotency_key": "k1"})
    with pytest.raises(stripe.IdempotencyError):
        client.v1.billing.meter_events.create(event("e1", value="6"),
                                              options={"idempotency_key": "k1"})


def test_a_repeated_identifier_is_refused_in_stripes_words_and_not_counted(client, fake):
    client.v1.billing.meter_events.create(event("e1"))
    with pytest.raises(stripe.InvalidRequestError) as refused:
        client.v1.billing.meter_events.create(event("e1"))
    assert refused.value.http_status == 400
    assert refused.value.code is None  # Stripe sends no code: only the message says why
    assert refused.value.user_message == "An event already exists with identifier e1."
    assert fake.totals_by_customer() == {"cus_1": 5}


def test_missing_parameters_and_wrong_keys_get_stripes_error_shapes(client, fake):
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.billing.meter_events.create(
            {"event_name": "instance_minutes", "payload": {"value": "1"}})
    assert missing.value.param == "payload[stripe_customer_id]"
    wrong = stripe.StripeClient("sk_test_wrong", base_addresses={"api": fake.url})
    with pytest.raises(stripe.AuthenticationError):
        wrong.v1.billing.meter_events.create(event("e2"))
    body = httpx.post(f"{fake.url}{METER_EVENTS}").json()
    assert set(body["error"]) >= {"type", "message"}


def test_programmed_failures_come_first_then_normal_answers(client, fake):
    fake.rate_limit_next(1, retry_after=7)
    with pytest.raises(stripe.RateLimitError) as limited:
        client.v1.billing.meter_events.create(event("e1"))
    assert limited.value.headers["Retry-After"] == "7"
    fake.fail_next(1, status=503)
    with pytest.raises(stripe.APIError):
        client.v1.billing.meter_events.create(event("e1"))
    fake.drop_next(1)
    with pytest.raises(stripe.APIConnectionError):
        client.v1.billing.meter_events.create(event("e1"))
    client.v1.billing.meter_events.create(event("e1"))
    assert len(fake.meter_events) == 1


def test_the_timestamp_window_is_enforced_when_the_fake_has_a_clock():
    now = 1_800_000_000.0
    with FakeStripe(clock=lambda: now) as fake:
        client = stripe.StripeClient(fake.api_key, base_addresses={"api": fake.url})
        client.v1.billing.meter_events.create({**event("ok"), "timestamp": int(now) - 86400})
        with pytest.raises(stripe.InvalidRequestError) as old:
            client.v1.billing.meter_events.create({**event("old"),
                                                   "timestamp": int(now) - 36 * 86400})
        assert old.value.param == "timestamp"


def test_invoices_are_listed_newest_first_filtered_and_paged(client, fake):
    base = int(time.time()) - 10_000
    for i in range(25):
        fake.add_invoice(customer="cus_1" if i % 2 else "cus_2", total=i, created=base + i)
    page = client.v1.invoices.list({"limit": 5, "customer": "cus_1",
                                    "created": {"gte": base + 4, "lt": base + 20}})
    assert page.has_more is True
    assert [inv.total for inv in page.data] == [19, 17, 15, 13, 11]
    everything = [inv.total for inv in page.auto_paging_iter()]
    assert everything == [19, 17, 15, 13, 11, 9, 7, 5]
    assert all(r.path == INVOICES for r in fake.requests)


def test_an_unknown_api_version_is_refused_as_stripe_words_it(fake):
    wrong = stripe.StripeClient(fake.api_key, base_addresses={"api": fake.url},
                                max_network_retries=0, stripe_version="2019-2-19")
    with pytest.raises(stripe.InvalidRequestError) as refused:
        wrong.v1.invoices.list()
    assert refused.value.http_status == 400
    assert refused.value.user_message == "Invalid Stripe API version: 2019-2-19"
    assert refused.value.code is None
    # The header the library sent is the one refused.
    assert fake.requests[-1].headers["stripe-version"] == "2019-2-19"


def test_invoice_payments_intents_and_charges_are_served_as_stored(client, fake):
    from tests.support.stripe_events import charge, invoice_payment, payment_intent

    fake.add_objects(
        invoice_payment("in_1", 500, intent_id="pi_1", paid=False, created=100),
        invoice_payment("in_1", 500, intent_id="pi_2", paid=True, created=200),
        invoice_payment("in_other", 500, intent_id="pi_3", paid=True),
        payment_intent("cus_1", 500, intent_id="pi_2", latest_charge="ch_2"),
        charge("cus_1", 500, charge_id="ch_2", payment_intent="pi_2"),
    )
    listed = client.v1.invoice_payments.list({"invoice": "in_1"})
    assert [p.payment.payment_intent for p in listed.data] == ["pi_2", "pi_1"]  # newest first
    paid = client.v1.invoice_payments.list({"invoice": "in_1", "status": "paid"})
    assert [p.status for p in paid.data] == ["paid"]
    assert client.v1.payment_intents.retrieve("pi_2").latest_charge == "ch_2"
    assert client.v1.charges.retrieve("ch_2").payment_method_details.type == "card"
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.charges.retrieve("ch_nothing")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.invoice_payments.list({"invoice": "in_1", "customer": "cus_1"})
    assert unknown.value.user_message == "Received unknown parameter: customer"
