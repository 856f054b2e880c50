"""Backlogs go to Stripe through the v2 meter event stream, several requests in flight; v1 calls
keep to one at a time per customer; replicas share the work without sending anything twice.
Against the local server speaking Stripe's wire format (tests/support/fake_stripe*.py)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient

from billing_engine.api import create_app
from billing_engine.customers.tables import orgs
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.stripe.meters.rules import stripe_identifier
from billing_engine.stripe.meters.tables import meter_outbox
from tests.support.builders import new_org
from tests.support.fake_stripe import METER_EVENTS, FakeStripe
from tests.support.fake_stripe_v2 import SESSIONS, STREAM


@pytest.fixture
def fake(clock) -> Iterator[FakeStripe]:
    with FakeStripe(clock=lambda: clock().timestamp()) as server:
        yield server


def engine(database, settings, clock, fake: FakeStripe, **overrides) -> TestClient:
    configured = replace(
        settings,
        stripe_secret_key=fake.api_key,
        stripe_api_base=fake.url,
        stripe_timeout_seconds=5,
        meter_stream_min_records=overrides.pop("stream_min", 20),
        **overrides,
    )
    app = create_app(configured, database=database, metrics=EngineMetrics(), clock=clock,
                     housekeeping=False)
    return TestClient(app)


@pytest.fixture
def app(pg_database, settings, clock, fake) -> Iterator[TestClient]:
    with engine(pg_database, settings, clock, fake) as client:
        yield client


def backlog(client: TestClient, admin, *, orgs_count: int, hours: int, now: datetime,
            customer_prefix: str = "cus_") -> list[str]:
    """Closed hours waiting in the outbox, as enqueueing leaves them: `orgs_count` linked orgs
    with `hours` hourly records each, the newest ending three hours before `now`."""
    database = client.app.state.services.database  # type: ignore[attr-defined]
    first_hour = int(now.timestamp()) // 3600 - 3 - hours
    made = []
    rows = []
    for n in range(orgs_count):
        org = new_org(client, admin)
        made.append(org)
        with database.engine.begin() as conn:
            conn.execute(orgs.update().where(orgs.c.id == org)
                         .values(stripe_customer_id=f"{customer_prefix}{n}"))
        for h in range(hours):
            hour = first_hour + h
            label = datetime.fromtimestamp(hour * 3600, UTC).strftime("%Y%m%d%H")
            rows.append({"org_id": org, "hour": hour, "version": 1,
                         "identifier": f"usage-{org}-{label}-v1", "minutes": 60,
                         "state": "pending", "attempts": 0, "next_attempt_at": now,
                         "created_at": now})
    with database.engine.begin() as conn:
        conn.execute(meter_outbox.insert(), rows)
    return made


def send(client: TestClient) -> dict:
    reporting = client.app.state.services.meters  # type: ignore[attr-defined]
    return reporting.flush(enqueue=False).as_json()


def sample(client: TestClient, name: str, labels: dict[str, str] | None = None) -> float | None:
    registry = client.app.state.services.metrics.registry  # type: ignore[attr-defined]
    return registry.get_sample_value(name, labels or {})


def streamed_identifiers(fake: FakeStripe) -> list[str]:
    return [e["identifier"] for r in fake.requests_to(STREAM) if r.status == 200
            for e in r.json["events"]]


def test_a_backlog_goes_by_the_stream_in_requests_of_at_most_100_events(app, admin, clock, fake):
    made = backlog(app, admin, orgs_count=26, hours=10, now=clock())  # 260 records

    result = send(app)

    assert (result["sent"], result["failed"], result["retrying"]) == (260, 0, 0)
    [session] = fake.requests_to(SESSIONS)
    assert session.headers["authorization"] == f"Bearer {fake.api_key}"
    assert session.headers["stripe-version"] == "2026-10-28.endive"
    requests = fake.requests_to(STREAM)
    assert sorted(len(r.json["events"]) for r in requests) == [60, 100, 100]
    assert all(r.headers["authorization"].startswith("Bearer mes_tok_") for r in requests)
    assert all(r.headers["content-type"].startswith("application/json") for r in requests)
    assert fake.requests_to(METER_EVENTS) == []
    event = next(e for r in requests for e in r.json["events"]
                 if e["payload"]["stripe_customer_id"] == "cus_0")
    assert set(event) == {"event_name", "identifier", "timestamp", "payload"}
    assert event["event_name"] == "instance_minutes"
    assert event["payload"] == {"stripe_customer_id": "cus_0", "value": "60"}
    assert event["timestamp"].endswith("Z") and "T" in event["timestamp"]
    assert event["identifier"].startswith(f"usage-{made[0]}-")
    assert fake.totals_by_customer() == {f"cus_{n}": 600 for n in range(26)}
    assert sample(app, "meter_requests_total", {"api": "stream"}) == 3
    assert sample(app, "meter_events_sent_total") == 260


def test_the_session_is_renewed_before_it_expires_and_once_more_if_stripe_says_so(
    app, admin, clock, fake
):
    backlog(app, admin, orgs_count=5, hours=5, now=clock())
    send(app)
    clock.advance(minutes=14, seconds=1)  # the 15 minute token has under a minute left
    backlog(app, admin, orgs_count=5, hours=5, now=clock(), customer_prefix="cus_b")
    send(app)
    assert len(fake.requests_to(SESSIONS)) == 2
    assert all(r.status == 200 for r in fake.requests_to(STREAM))

    fake.v2.expire_sessions()  # Stripe ended the session early
    backlog(app, admin, orgs_count=5, hours=5, now=clock(), customer_prefix="cus_c")
    result = send(app)

    assert result["sent"] == 25
    assert [r.status for r in fake.requests_to(STREAM)][-2:] == [401, 200]
    assert len(fake.requests_to(SESSIONS)) == 3
    assert sum(fake.totals_by_customer().values()) == 75 * 60


def test_a_429_on_the_stream_holds_back_only_that_request(app, admin, clock, fake):
    backlog(app, admin, orgs_count=25, hours=10, now=clock())  # 250: three requests
    fake.rate_limit_next(1, retry_after=60, path=STREAM)

    first = send(app)

    held = first["retrying"]
    assert held in (50, 100)  # whichever request the 429 met: 100 + 100 + 50 in flight at once
    assert (first["sent"], first["stopped"]) == (250 - held, None)
    assert first["errors"] == {"rate_limited": 1}
    clock.advance(seconds=30)
    assert send(app)["attempted"] == 0  # Stripe's 60 s are not over
    clock.advance(seconds=31)
    assert send(app)["sent"] == held
    assert sum(fake.totals_by_customer().values()) == 250 * 60


def test_a_stream_request_refused_whole_is_sent_again_one_event_at_a_time(
    app, admin, clock, fake
):
    backlog(app, admin, orgs_count=3, hours=10, now=clock())
    fake.fail_next(1, status=400, message="events[3].payload is invalid.", path=STREAM)
    fake.reject_customer("cus_2")  # v1 names the one at fault

    result = send(app)

    assert (result["sent"], result["failed"]) == (20, 10)
    assert len(fake.requests_to(METER_EVENTS)) == 30
    assert fake.totals_by_customer() == {"cus_0": 600, "cus_1": 600}


def test_v1_calls_run_side_by_side_but_one_at_a_time_per_customer(
    pg_database, settings, admin, clock
):
    with FakeStripe(latency_seconds=0.05) as slow, \
            engine(pg_database, settings, clock, slow, stream_min=10_000) as client:
        backlog(client, admin, orgs_count=8, hours=3, now=clock())  # 24 calls of 50 ms
        result = send(client)

    assert result["sent"] == 24
    assert slow.concurrent_refusals == 0  # never two at once for one customer
    # Customers side by side, seen by the stand-in (not timed: a loaded machine stretches time).
    assert slow.v1_peak_in_flight > 1


def test_the_stand_in_refuses_concurrent_v1_calls_for_one_customer_and_meter(clock):
    import stripe

    with FakeStripe(latency_seconds=0.2) as slow:
        client = stripe.StripeClient(slow.api_key, base_addresses={"api": slow.url})
        answers: list[str] = []

        def call(n: int) -> None:
            try:
                client.v1.billing.meter_events.create({
                    "event_name": "instance_minutes", "identifier": f"e{n}",
                    "payload": {"stripe_customer_id": "cus_1", "value": "1"}})
                answers.append("ok")
            except stripe.RateLimitError:
                answers.append("429")

        threads = [threading.Thread(target=call, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sorted(answers) == ["429", "ok"]


def test_two_replicas_share_a_backlog_and_send_each_record_once(
    pg_database, settings, admin, clock, fake
):
    with engine(pg_database, replace(settings, meter_flush_batch_size=300), clock, fake) as one, \
            engine(pg_database, replace(settings, meter_flush_batch_size=300), clock,
                   fake) as two:
        one.app.state.services.meters.config = replace(  # type: ignore[attr-defined]
            one.app.state.services.meters.config, chunk_size=100)  # type: ignore[attr-defined]
        two.app.state.services.meters.config = replace(  # type: ignore[attr-defined]
            two.app.state.services.meters.config, chunk_size=100)  # type: ignore[attr-defined]
        backlog(one, admin, orgs_count=30, hours=20, now=clock())  # 600 records
        results: list[dict] = []

        def drain(client: TestClient) -> None:
            while True:
                result = send(client)
                results.append(result)
                if result["attempted"] == 0:
                    return

        workers = [threading.Thread(target=drain, args=(c,)) for c in (one, two)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=60)

    sent = streamed_identifiers(fake)
    assert len(sent) == 600
    assert Counter(sent).most_common(1)[0][1] == 1  # no identifier went out twice
    assert sum(r["sent"] for r in results) == 600
    assert sum(1 for r in results if r["sent"]) >= 2


def test_identifiers_sent_are_the_outbox_identifier_with_the_customer_digest(
    app, admin, clock, fake
):
    backlog(app, admin, orgs_count=1, hours=25, now=clock())
    send(app)
    database = app.app.state.services.database  # type: ignore[attr-defined]
    with database.engine.begin() as conn:
        identifiers = [r.identifier for r in conn.execute(meter_outbox.select())]
    assert sorted(streamed_identifiers(fake)) == sorted(
        stripe_identifier(i, customer="cus_0", generation=0) for i in identifiers
    )
    assert all(len(i) <= 100 for i in streamed_identifiers(fake))
