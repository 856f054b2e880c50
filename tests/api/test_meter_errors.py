"""Usage Stripe took and later found invalid: the meter error report (a thin event fetched from
Stripe) marks the records, counts them, and a requeue after the repair sends them again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from billing_engine.customers.tables import orgs
from tests.api.test_meter_stream import backlog, engine, send
from tests.support.fake_stripe import FakeStripe
from tests.support.fake_stripe_v2 import CORE_EVENTS, STREAM
from tests.support.stripe_events import signature_header

THIN_SECRET = "whsec_thin_test_9c2f0a7d51e84b36"


@pytest.fixture
def fake(clock) -> Iterator[FakeStripe]:
    with FakeStripe(clock=lambda: clock().timestamp()) as server:
        yield server


@pytest.fixture
def app(pg_database, settings, clock, fake) -> Iterator[TestClient]:
    with engine(pg_database, settings, clock, fake,
                stripe_thin_webhook_secret=THIN_SECRET) as client:
        yield client


def destination(client: TestClient, answers: list[Any]):
    """Stripe's event destination pointed at the engine."""
    def post(body: bytes, headers: dict[str, str]) -> None:
        answers.append(client.post("/webhooks/stripe/thin", content=body, headers=headers))
    return post


def sample(client: TestClient, name: str, labels: dict[str, str] | None = None) -> float | None:
    registry = client.app.state.services.metrics.registry  # type: ignore[attr-defined]
    return registry.get_sample_value(name, labels or {})


def pending(client: TestClient, admin) -> dict:
    return client.get("/debug/meters/pending", params={"limit": 500}, headers=admin).json()


def test_an_unknown_customer_reported_later_marks_its_records_and_a_requeue_bills_them(
    app, admin, clock, fake
):
    made = backlog(app, admin, orgs_count=3, hours=10, now=clock())  # cus_0, cus_1, cus_2
    fake.report_customer_unknown_later("cus_1")  # a test-mode id pasted into live, say

    first = send(app)
    assert (first["sent"], first["failed"]) == (30, 0)  # Stripe took all of them
    answers: list[Any] = []
    event = fake.deliver_error_reports(destination(app, answers), secret=THIN_SECRET)

    assert event is not None
    [error_type] = event["data"]["reason"]["error_types"]
    assert error_type["code"] == "meter_event_customer_not_found"
    assert (error_type["error_count"], len(error_type["sample_errors"])) == (10, 3)
    [answer] = answers
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"event_id": event["id"], "type": event["type"],
                             "outcome": "handled", "rejected": 10}
    assert fake.requests_to(CORE_EVENTS + event["id"])[0].status == 200
    assert sample(app, "meter_error_reports_total",
                  {"code": "meter_event_customer_not_found"}) == 10
    assert sample(app, "usage_meter_rejected") == 10
    view = pending(app, admin)
    assert view["rejected_count"] == 10
    assert {r["org_id"] for r in view["rejected"]} == {made[1]}
    assert all(r["last_error"].startswith("stripe error report meter_event_customer_not_found")
               for r in view["rejected"])

    # Support links the org to its real customer; an operator sends the usage again.
    database = app.app.state.services.database  # type: ignore[attr-defined]
    with database.engine.begin() as conn:
        conn.execute(orgs.update().where(orgs.c.id == made[1])
                     .values(stripe_customer_id="cus_1_live"))
    requeued = app.post("/admin/meters/requeue-failed", params={"org_id": made[1]},
                        headers=admin)
    assert requeued.json()["requeued"] == 10
    again = send(app)

    assert (again["sent"], again["failed"]) == (10, 0)
    assert fake.totals_by_customer() == {"cus_0": 600, "cus_2": 600, "cus_1_live": 600}
    assert sample(app, "usage_meter_rejected") == 0


def test_a_redelivered_report_is_not_counted_twice_and_other_types_are_ignored(
    app, admin, clock, fake
):
    backlog(app, admin, orgs_count=1, hours=25, now=clock(), customer_prefix="cus_gone")
    fake.report_customer_unknown_later("cus_gone0")
    send(app)
    bodies: list[tuple[bytes, dict[str, str]]] = []
    fake.deliver_error_reports(lambda b, h: bodies.append((b, h)), secret=THIN_SECRET)
    [(body, headers)] = bodies

    first = app.post("/webhooks/stripe/thin", content=body, headers=headers)
    again = app.post("/webhooks/stripe/thin", content=body, headers=headers)

    assert (first.json()["outcome"], again.json()["outcome"]) == ("handled", "duplicate")
    assert sample(app, "meter_error_reports_total",
                  {"code": "meter_event_customer_not_found"}) == 25
    other = json.dumps({"id": "evt_test_other", "object": "v2.core.event",
                        "type": "v1.billing.meter.no_meter_found",
                        "created": "2026-11-18T12:00:00Z"})
    ignored = app.post("/webhooks/stripe/thin", content=other,
                       headers={"Stripe-Signature": signature_header(other, secret=THIN_SECRET)})
    assert ignored.status_code == 200 and ignored.json()["outcome"] == "ignored"


def test_a_thin_event_with_a_bad_signature_or_body_is_refused_naming_the_field(app, fake):
    body = json.dumps({"id": "evt_test_1", "type": "v1.billing.meter.error_report_triggered"})
    forged = app.post("/webhooks/stripe/thin", content=body,
                      headers={"Stripe-Signature": signature_header(body, secret="whsec_other")})
    assert forged.status_code == 400
    assert forged.json()["errors"][0]["field"] == "Stripe-Signature"
    missing = app.post("/webhooks/stripe/thin", content=body)
    assert missing.status_code == 400
    for bad, field in (("not json", "body"), ("[]", "body"), ('{"type": "x"}', "id"),
                       ('{"id": "evt_1"}', "type")):
        answer = app.post("/webhooks/stripe/thin", content=bad,
                          headers={"Stripe-Signature": signature_header(bad, secret=THIN_SECRET)})
        assert answer.status_code == 400, bad
        assert answer.json()["errors"][0]["field"] == field
    assert fake.requests_to(STREAM) == []


def test_an_event_stripe_cannot_find_is_answered_502_so_stripe_delivers_again(app, fake):
    body = json.dumps({"id": "evt_test_unknown", "object": "v2.core.event",
                       "type": "v1.billing.meter.error_report_triggered"})
    answer = app.post("/webhooks/stripe/thin", content=body,
                      headers={"Stripe-Signature": signature_header(body, secret=THIN_SECRET)})
    assert answer.status_code == 502
    assert "No such event" in answer.text


def test_without_a_secret_thin_events_are_answered_503(pg_database, settings, clock, fake):
    with engine(pg_database, settings, clock, fake) as client:
        answer = client.post("/webhooks/stripe/thin", content=b"{}")
    assert answer.status_code == 503
    assert answer.json()["error"] == "thin_events_not_configured"
