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
