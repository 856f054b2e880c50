"""Usage reporting to Stripe through the outbox, against a local server speaking Stripe's wire
format. What Stripe counted is read from what that server recorded."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from billing_engine.api import create_app
from billing_engine.customers.tables import orgs
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.stripe.meters.rules import stripe_identifier
from tests.support.builders import ADMIN_HEADERS, hb, new_org, post_heartbeats
from tests.support.fake_stripe import METER_EVENTS, FakeStripe


def sent_as(identifier: str, customer: str, generation: int = 0) -> str:
    return stripe_identifier(identifier, customer=customer, generation=generation)

# The test clock stands at 2026-11-18 12:00:30 UTC: 09:00 and 10:00 are closed hours, 11:00 is not.
BREAKER_FAILURES = 3
BREAKER_COOLDOWN = 30


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        yield server


def engine(database, settings, clock, fake: FakeStripe | None) -> TestClient:
    configured = replace(
        settings,
        stripe_secret_key=fake.api_key if fake else None,
        stripe_api_base=fake.url if fake else None,
        stripe_breaker_failures=BREAKER_FAILURES,
        stripe_breaker_cooldown_seconds=BREAKER_COOLDOWN,
        stripe_timeout_seconds=5,
    )
    app = create_app(configured, database=database, metrics=EngineMetrics(), clock=clock,
                     housekeeping=False)
    return TestClient(app)


@pytest.fixture
def app(database, settings, clock, fake) -> Iterator[TestClient]:
    """The engine reporting to the fake Stripe, on each backend we ship."""
    with engine(database, settings, clock, fake) as client:
        yield client


@pytest.fixture
def pg_app(pg_database, settings, clock, fake) -> Iterator[TestClient]:
    with engine(pg_database, settings, clock, fake) as client:
        yield client


def linked_org(client: TestClient, admin: dict[str, str], customer: str) -> str:
    org = new_org(client, admin)
    with client.app.state.services.database.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(orgs.update().where(orgs.c.id == org).values(stripe_customer_id=customer))
    return org


def run_minutes(client: TestClient, org: str, instance: str, start, minutes: int) -> None:
    beats = [hb(instance, org, start + timedelta(minutes=m)) for m in range(minutes)]
    response = post_heartbeats(client, ADMIN_HEADERS, beats)
    assert response.status_code == 200 and response.json()["rejected"] == 0, response.text


def nine(clock):
    return clock().replace(hour=9, minute=0, second=0)


def flush(client: TestClient, admin: dict[str, str]) -> dict:
    response = client.post("/admin/meters/flush", headers=admin)
    assert response.status_code == 200, response.text
    return response.json()


def scheduled_flush(client: TestClient) -> dict:
    """What the background flusher does every METER_FLUSH_INTERVAL_SECONDS."""
    return client.app.state.services.meters.flush().as_json()  # type: ignore[attr-defined]


def sample(client: TestClient, name: str, labels: dict[str, str] | None = None) -> float | None:
    registry = client.app.state.services.metrics.registry  # type: ignore[attr-defined]
    return registry.get_sample_value(name, labels or {})


def pending(client: TestClient, admin: dict[str, str]) -> dict:
    response = client.get("/debug/meters/pending", headers=admin)
    assert response.status_code == 200, response.text
    return response.json()


# -- the happy path and the wire format -----------------------------------------------------------


def test_closed_hours_reach_stripe_as_meter_events_with_their_identifier(app, admin, clock, fake):
    org = linked_org(app, admin, "cus_A")
    run_minutes(app, org, "i-1", nine(clock), 150)  # 09:00-11:29

    result = flush(app, admin)

    assert (result["enqueued"], result["sent"], result["stopped"]) == (2, 2, None)
    requests = fake.requests_to(METER_EVENTS)
    assert [r.form for r in requests] == [
        {
            "event_name": "instance_minutes",
            "identifier": sent_as(f"usage-{org}-2026111809-v1", "cus_A"),
            "timestamp": str(int(nine(clock).timestamp())),
            "payload[stripe_customer_id]": "cus_A",
            "payload[value]": "60",
        },
        {
            "event_name": "instance_minutes",
            "identifier": sent_as(f"usage-{org}-2026111810-v1", "cus_A"),
            "timestamp": str(int((nine(clock) + timedelta(hours=1)).timestamp())),
            "payload[stripe_customer_id]": "cus_A",
            "payload[value]": "60",
        },
    ]
    assert [r.headers["idempotency-key"] for r in requests] == [
        sent_as(f"usage-{org}-2026111809-v1", "cus_A") + ":cus_A",
        sent_as(f"usage-{org}-2026111810-v1", "cus_A") + ":cus_A"]
    assert all(r.headers["content-type"] == "application/x-www-form-urlencoded"
               for r in requests)
    assert fake.totals_by_customer() == {"cus_A": 120}
    assert sample(app, "meter_events_sent_total") == 2
    assert sample(app, "usage_meter_queue") == 0
    assert pending(app, admin)["count"] == 0


def test_an_open_hour_waits_until_it_closes(app, admin, clock, fake):
    org = linked_org(app, admin, "cus_A")
    run_minutes(app, org, "i-1", clock().replace(minute=0, second=0), 1)  # 12:00, still open
    assert flush(app, admin)["enqueued"] == 0
    clock.advance(hours=1, minutes=4)  # 13:04: within the 5 minute close delay
    assert flush(app, admin)["enqueued"] == 0
    clock.advance(minutes=2)
    assert flush(app, admin)["sent"] == 1
    assert fake.totals_by_customer() == {"cus_A": 1}


def test_late_minutes_are_reported_as_a_correction_never_twice(app, admin, clock, fake):
    org = linked_org(app, admin, "cus_A")
    run_minutes(app, org, "i-1", nine(clock), 30)
    flush(app, admin)
    run_minutes(app, org, "i-1", nine(clock), 40)  # 30 repeats, 10 new minutes, late
    run_minutes(app, org, "i-2", nine(clock), 5)  # a second instance, late as well

    result = flush(app, admin)

    assert result["sent"] == 1
    assert [e["identifier"] for e in fake.meter_events] == [
        sent_as(f"usage-{org}-2026111809-v1", "cus_A"),
        sent_as(f"usage-{org}-2026111809-v2", "cus_A")]
    assert [e["payload"]["value"] for e in fake.meter_events] == ["30", "15"]
    assert fake.totals_by_customer() == {"cus_A": 45}
    usage = app.get("/v1/billing", params={"org_id": org}, headers=admin).json()["usage"]
    assert usage["used_minutes"] == 45


def test_orgs_without_a_stripe_customer_are_not_reported(app, admin, clock, fake):
    org = new_org(app, admin)
    run_minutes(app, org, "i-1", nine(clock), 90)
    assert flush(app, admin)["enqueued"] == 0
    assert fake.requests_to(METER_EVENTS) == []


# -- outages, rate limits, refusals ------------------------------------------------------------


def test_a_stripe_outage_loses_nothing_and_sends_nothing_twice(app, admin, clock, fake):
    org = linked_org(app, admin, "cus_A")
    other = linked_org(app, admin, "cus_B")
    run_minutes(app, org, "i-1", nine(clock), 120)
    run_minutes(app, other, "i-2", nine(clock), 60)
    fake.fail_next(2, status=500)  # the first two submissions meet an outage

    first = scheduled_flush(app)
    assert (first["sent"], first["retrying"], first["errors"]) == (1, 2, {"server_error": 2})
    assert sample(app, "meter_errors_total", {"reason": "server_error"}) == 2
    assert sample(app, "usage_meter_queue") == 2
    waiting = pending(app, admin)["oldest"]
    assert [(r["attempts"], r["last_status"]) for r in waiting] == [(1, 500), (1, 500)]
    assert all("server_error: HTTP 500" in r["last_error"] for r in waiting)

    assert scheduled_flush(app)["attempted"] == 0  # backing off: nothing is due yet
    clock.advance(seconds=31)
    second = scheduled_flush(app)

    assert (second["sent"], second["retrying"]) == (2, 0)
    assert fake.totals_by_customer() == {"cus_A": 120, "cus_B": 60}
    identifiers = [e["identifier"] for e in fake.meter_events]
    assert len(identifiers) == len(set(identifiers)) == 3
    assert len(fake.requests_to(METER_EVENTS)) == 5  # 3 sent + 2 refused during the outage
    assert sample(app, "usage_meter_queue") == 0
    assert sample(app, "meter_events_sent_total") == 3


def test_a_record_sent_again_after_a_lost_answer_is_counted_once(app, admin, clock, fake):
    """The engine dies after Stripe accepted a record but before it noted so; the lease runs out
    and the record goes again with the same Idempotency-Key."""
    org = linked_org(app, admin, "cus_A")
    run_minutes(app, org, "i-1", nine(clock), 60)
    reporting = app.app.state.services.meters  # type: ignore[attr-defined]
    reporting.enqueue()
    now = clock()
    [claimed] = reporting.store.claim_due(now=now, due_before=now, limit=1,
                                          lease_until=now + timedelta(minutes=10))
    from billing_engine.stripe.client import MeterEvent

    reporting.provider.report_meter_event(MeterEvent(
        identifier=sent_as(claimed.identifier, "cus_A"), event_name="instance_minutes",
        stripe_customer_id="cus_A", value=claimed.minutes, timestamp=claimed.hour * 3600))
    # ...and the process dies here, before mark_sent.

    assert scheduled_flush(app)["attempted"] == 0  # still leased to the dead sender
    clock.advance(minutes=11)
    assert scheduled_flush(app)["sent"] == 1

    replayed = fake.requests_to(METER_EVENTS)
    assert len(replayed) == 2 and replayed[0].form == replayed[1].form
    assert fake.totals_by_customer() == {"cus_A": 60}


def test_a_429_holds_back_only_its_customer_until_retry_after(app, admin, clock, fake):
    org = linked_org(app, admin, "cus_A")
    other = linked_org(app, admin, "cus_B")
    run_minutes(app, org, "i-1", nine(clock), 120)
    run_minutes(app, other, "i-2", nine(clock), 120)
    fake.rate_limit_next(1, retry_after=120)  # whichever customer's call comes first

    first = scheduled_flush(app)

    assert (first["stopped"], first["sent"], first["retrying"]) == (None, 2, 1)
    assert sample(app, "meter_errors_total", {"reason": "rate_limited"}) == 1
    [limited] = [r for r in fake.requests_to(METER_EVENTS) if r.status == 429]
    customer = limited.form["payload[stripe_customer_id]"]
    assert fake.totals_by_customer() == {({"cus_A", "cus_B"} - {customer}).pop(): 120}
    calls = len(fake.requests_to(METER_EVENTS))
    assert calls == 3  # the limited customer's second hour was not tried after the 429

    clock.advance(seconds=100)  # the 30 s backoff is over, Stripe's 120 s are not
    assert scheduled_flush(app)["attempted"] == 0
    assert len(fake.requests_to(METER_EVENTS)) == calls

    clock.advance(seconds=21)
    assert scheduled_flush(app)["sent"] == 2
    assert fake.totals_by_customer() == {"cus_A": 120, "cus_B": 120}


def test_a_permanent_400_is_kept_visible_and_not_retried(app, admin, clock, fake):
    good = linked_org(app, admin, "cus_A")
    gone = linked_org(app, admin, "cus_deleted")
    run_minutes(app, good, "i-1", nine(clock), 60)
    run_minutes(app, gone, "i-2", nine(clock), 60)
    fake.reject_customer("cus_deleted")

    result = flush(app, admin)

    assert (result["sent"], result["failed"]) == (1, 1)
    assert sample(app, "meter_errors_total", {"reason": "client_error"}) == 1
    assert sample(app, "usage_meter_failed") == 1
    assert sample(app, "usage_meter_queue") == 0
    view = pending(app, admin)
    [failed] = view["failed"]
    assert failed["org_id"] == gone and failed["state"] == "failed"
    assert failed["last_status"] == 400
    assert "No such customer: 'cus_deleted'" in failed["last_error"]

    clock.advance(hours=3)
    flush(app, admin)
    assert len(fake.requests_to(METER_EVENTS)) == 2  # never tried again on its own

    # Support repairs the customer link; an admin sends the record again.
    with app.app.state.services.database.engine.begin() as conn:  # type: ignore[attr-defined]
        conn.execute(orgs.update().where(orgs.c.id == gone).values(stripe_customer_id="cus_C"))
    requeued = app.post("/admin/meters/requeue-failed", params={"org_id": gone}, headers=admin)
    assert requeued.json()["requeued"] == 1
    assert flush(app, admin)["sent"] == 1
    assert fake.totals_by_customer() == {"cus_A": 60, "cus_C": 60}


def test_an_identifier_stripe_already_holds_counts_as_sent_in_stripes_own_words(
    app, admin, clock, fake
):
    """An earlier attempt got through under another Idempotency-Key (an older release, a
    restore): Stripe answers 400 "An event already exists with identifier ..." without a code."""
    from billing_engine.stripe.client import MeterEvent

    org = linked_org(app, admin, "cus_A")
    run_minutes(app, org, "i-1", nine(clock), 60)
    reporting = app.app.state.services.meters  # type: ignore[attr-defined]
    reporting.enqueue()
    [record] = reporting.store.records_for(org)
    identifier = sent_as(record.identifier, "cus_A")
    reporting.provider.report_meter_event(MeterEvent(
        identifier=identifier, event_name="instance_minutes", stripe_customer_id="cus_B",
        value=60, timestamp=record.hour * 3600))

    result = flush(app, admin)

    assert (result["sent"], result["failed"]) == (1, 0)
    assert result["records"][0]["error"] == "already counted by Stripe"
    refusal = fake.requests_to(METER_EVENTS)[-1]
    assert refusal.status == 400 and refusal.form["identifier"] == identifier
    assert pending(app, admin)["failed_count"] == 0
    assert len(fake.meter_events) == 1


def test_an_org_relinked_to_another_customer_sends_under_identifiers_stripe_takes(
    app, admin, clock, fake
):
    """Stripe took cus_X's events, then found cus_X was not the customer (an error report):
    the same identifiers for cus_Y would be refused as duplicates and the usage never billed."""
    org = linked_org(app, admin, "cus_X")
    run_minutes(app, org, "i-1", nine(clock), 60)
    flush(app, admin)
    first = sent_as(f"usage-{org}-2026111809-v1", "cus_X")
    assert [e["identifier"] for e in fake.meter_events] == [first]
    database = app.app.state.services.database  # type: ignore[attr-defined]
    from billing_engine.stripe.meters.tables import meter_outbox

    with database.engine.begin() as conn:  # what an error report does (see test_meter_errors)
        conn.execute(meter_outbox.update().where(meter_outbox.c.org_id == org)
                     .values(state="rejected"))
        conn.execute(orgs.update().where(orgs.c.id == org).values(stripe_customer_id="cus_Y"))

    requeued = app.post("/admin/meters/requeue-failed", params={"org_id": org}, headers=admin)
    assert requeued.json()["requeued"] == 1
    result = flush(app, admin)

    again = sent_as(f"usage-{org}-2026111809-v1", "cus_Y", generation=1)
    assert (result["sent"], result["failed"]) == (1, 0)
    assert again != first
    assert fake.requests_to(METER_EVENTS)[-1].status == 200
    assert fake.totals_by_customer() == {"cus_X": 60, "cus_Y": 60}  # cus_X's: rejected by Stripe
    [record] = pending(app, admin)["oldest"] or [None]
    assert record is None


def test_a_record_is_never_sent_once_its_hour_leaves_stripes_35_day_window(
    app, admin, clock, fake
):
    org = linked_org(app, admin, "cus_A")
    run_minutes(app, org, "i-1", nine(clock), 60)
    fake.fail_next(10_000, status=500)  # a long Stripe outage, or a bug that kept it pending
    scheduled_flush(app)

    clock.advance(days=31)
    app.app.state.services.meters.refresh_gauges()  # type: ignore[attr-defined]
    age = sample(app, "usage_meter_oldest_unsent_event_age_seconds")
    assert age == (clock() - nine(clock).replace(day=18, month=11)).total_seconds()
    assert age > 30 * 86400  # UsageMeterRecordsNearWindow fires from here

    # 09:00 on 18 November can be sent until 08:00 on 23 December (35 days less an hour).
    clock.advance(days=4, hours=-4, minutes=-1)  # 23 December 07:59:30
    fake.reset()
    fake.fail_next(1, status=500)
    assert flush(app, admin)["expired"] == 0  # still inside: tried (and failed again)
    clock.advance(minutes=1)
    fake.reset()

    result = flush(app, admin)

    assert (result["expired"], result["sent"], result["attempted"]) == (1, 0, 0)
    assert "past 35 days" in result["records"][0]["error"]
    assert fake.requests_to(METER_EVENTS) == []
    assert sample(app, "meter_records_expired_total") == 1
    assert sample(app, "usage_meter_expired") == 1
    assert sample(app, "usage_meter_queue") == 0
    assert sample(app, "usage_meter_oldest_unsent_event_age_seconds") == 0
    view = pending(app, admin)
    assert (view["count"], view["expired_count"]) == (0, 1)
    assert app.post("/admin/meters/requeue-failed", headers=admin).json()["requeued"] == 0


def test_a_wrong_key_stops_the_run_and_keeps_every_record_for_later(app, admin, clock, fake):
    org = linked_org(app, admin, "cus_A")
    run_minutes(app, org, "i-1", nine(clock), 120)
    fake.fail_next(1, status=401, message="Invalid API Key provided.")

    result = scheduled_flush(app)

    assert (result["stopped"], result["failed"], result["retrying"]) == ("unauthorized", 0, 1)
    assert len(fake.requests_to(METER_EVENTS)) == 1
    assert pending(app, admin)["count"] == 2
    clock.advance(minutes=1)
    assert scheduled_flush(app)["sent"] == 2


def test_a_dropped_connection_counts_as_a_network_error_and_is_retried(app, admin, clock, fake):
    org = linked_org(app, admin, "cus_A")
    run_minutes(app, org, "i-1", nine(clock), 60)
    fake.drop_next(1)
    assert scheduled_flush(app)["errors"] == {"network": 1}
    assert sample(app, "meter_errors_total", {"reason": "network"}) == 1
    clock.advance(seconds=30)
    assert scheduled_flush(app)["sent"] == 1
    assert fake.totals_by_customer() == {"cus_A": 60}


def test_the_background_flusher_works_off_a_backlog_without_waiting_between_full_batches(
    pg_database, settings, admin, clock, fake
):
    from billing_engine.stripe.meters.service import MeterFlusher
    from devstack.servers import wait_for

    with engine(pg_database, replace(settings, meter_flush_batch_size=2), clock, fake) as app:
        org = linked_org(app, admin, "cus_A")
        run_minutes(app, org, "i-1", clock() - timedelta(hours=8), 6 * 60)  # six closed hours
        flusher = MeterFlusher(app.app.state.services.meters, interval=600)  # type: ignore[attr-defined]
        flusher.start()
        try:
            wait_for(lambda: fake.totals_by_customer() == {"cus_A": 360}, timeout=10,
                     what="three full batches in a row")
        finally:
            flusher.stop()
        assert len(fake.requests_to(METER_EVENTS)) == 6


# -- the circuit breaker ------------------------------------------------------------------------


def test_the_breaker_opens_on_repeated_failures_and_closes_after_a_good_probe(
    pg_app, admin, clock, fake
):
    app = pg_app
    org = linked_org(app, admin, "cus_A")
    run_minutes(app, org, "i-1", clock() - timedelta(hours=8), 6 * 60)  # six closed hours
    fake.fail_next(100, status=503)
    assert sample(app, "stripe_circuit_breaker_state") == 0

    first = scheduled_flush(app)

    assert first["errors"] == {"server_error": BREAKER_FAILURES, "circuit_open": 1}
    assert first["stopped"] == "circuit_open"
    assert sample(app, "stripe_circuit_breaker_state") == 1
    assert len(fake.requests_to(METER_EVENTS)) == BREAKER_FAILURES
    assert pending(app, admin)["circuit_breaker"] == "open"

    # While open, a forced flush does not call Stripe either.
    assert flush(app, admin)["stopped"] == "circuit_open"
    assert len(fake.requests_to(METER_EVENTS)) == BREAKER_FAILURES
    assert sample(app, "meter_errors_total", {"reason": "circuit_open"}) == 2

    clock.advance(seconds=BREAKER_COOLDOWN)
    assert sample(app, "stripe_circuit_breaker_state") == 2  # half-open: a probe may go
    fake.reset()  # Stripe is back

    second = flush(app, admin)

    assert (second["sent"], second["stopped"]) == (6, None)
    assert sample(app, "stripe_circuit_breaker_state") == 0
    assert fake.totals_by_customer() == {"cus_A": 360}


def test_a_failed_probe_opens_the_breaker_again(pg_app, admin, clock, fake):
    app = pg_app
    org = linked_org(app, admin, "cus_A")
    run_minutes(app, org, "i-1", clock() - timedelta(hours=8), 6 * 60)
    fake.fail_next(100, status=500)
    scheduled_flush(app)
    assert sample(app, "stripe_circuit_breaker_state") == 1
    clock.advance(seconds=BREAKER_COOLDOWN)
    result = flush(app, admin)
    assert result["errors"] == {"server_error": 1, "circuit_open": 1}  # the probe, then refusal
    assert sample(app, "stripe_circuit_breaker_state") == 1
    assert len(fake.requests_to(METER_EVENTS)) == BREAKER_FAILURES + 1
    assert pending(app, admin)["count"] == 6


# -- admin access, the simulated provider, metrics ----------------------------------------------


@pytest.mark.parametrize(("method", "path"), [
    ("post", "/admin/meters/flush"),
    ("get", "/debug/meters/pending"),
    ("post", "/admin/meters/requeue-failed"),
])
def test_meter_endpoints_need_the_admin_key(pg_app, method, path, fake):
    missing = getattr(pg_app, method)(path)
    wrong = getattr(pg_app, method)(path, headers={"X-Admin-Key": "nope"})
    assert missing.status_code == wrong.status_code == 401
    assert missing.json()["errors"] == [
        {"field": "Authorization", "reason": "a Bearer credential is required"}
    ]
    assert fake.requests == []


def test_pending_lists_the_oldest_first_with_attempts_and_last_error(pg_app, admin, clock, fake):
    app = pg_app
    org = linked_org(app, admin, "cus_A")
    run_minutes(app, org, "i-1", nine(clock), 60)
    scheduled_flush(app)  # 09:00 goes out
    fake.fail_next(5, status=502)
    run_minutes(app, org, "i-1", nine(clock) + timedelta(hours=1), 60)
    scheduled_flush(app)  # 10:00 is queued at 12:00:30 and meets a 502
    clock.advance(minutes=10)
    run_minutes(app, org, "i-1", nine(clock) + timedelta(hours=-1), 60)  # 08:00, late
    scheduled_flush(app)  # 08:00 is queued at 12:10:30; both meet a 502
    clock.advance(minutes=5)

    view = pending(app, admin)

    assert view["count"] == 2 and view["provider"] == "stripe" and view["simulated"] is False
    assert [(r["hour"], r["attempts"], r["last_status"], r["age_seconds"])
            for r in view["oldest"]] == [
        ("2026-11-18T10:00:00+00:00", 2, 502, 900),
        ("2026-11-18T08:00:00+00:00", 1, 502, 300),
    ]
    first = view["oldest"][0]
    assert first["identifier"] == f"usage-{org}-2026111810-v1"
    assert first["last_error"].startswith("server_error: HTTP 502")
    assert view["oldest_age_seconds"] == 900
    app.app.state.services.meters.refresh_gauges()  # what each housekeeping round does
    assert sample(app, "usage_meter_oldest_age_seconds") == 900
    assert sample(app, "usage_meter_queue") == 2
    too_few = app.get("/debug/meters/pending", params={"limit": 0}, headers=admin)
    assert too_few.status_code == 422 and too_few.json()["errors"][0]["field"] == "limit"


def test_without_a_secret_key_the_simulated_provider_takes_the_usage(
    pg_database, settings, admin, clock
):
    with engine(pg_database, settings, clock, None) as app:
        ready = app.get("/ready").json()
        assert ready["payment_provider"] == "simulated"
        org = linked_org(app, admin, "cus_sim")
        run_minutes(app, org, "i-1", nine(clock), 90)
        result = flush(app, admin)
        assert (result["provider"], result["sent"]) == ("simulated", 2)
        provider = app.app.state.services.provider  # type: ignore[attr-defined]
        assert sum(e.value for e in provider.events) == 90
        assert pending(app, admin)["simulated"] is True


def test_ready_names_stripe_when_a_key_is_set(pg_app):
    assert pg_app.get("/ready").json()["payment_provider"] == "stripe"


def test_meter_metrics_are_exported_before_anything_happens(pg_app):
    text = pg_app.get("/metrics").text
    for line in (
        "usage_meter_queue 0.0",
        "usage_meter_oldest_age_seconds 0.0",
        "meter_events_sent_total 0.0",
        "stripe_circuit_breaker_state 0.0",
        "reconciliation_mismatches 0.0",
    ):
        assert line in text
    for reason in ("rate_limited", "server_error", "client_error", "network", "circuit_open"):
        assert f'meter_errors_total{{reason="{reason}"}} 0.0' in text
