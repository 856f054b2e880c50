"""The usage-meter outbox store, on SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from billing_core.periods import minute_of
from billing_engine.customers.store import CustomerStore
from billing_engine.customers.tables import orgs
from billing_engine.stripe.meters.store import FAILED, PENDING, MeterStore
from billing_engine.usage.rules import Heartbeat, InstanceState, MeteringPolicy, classify
from billing_engine.usage.store import UsageStore

NOW = datetime(2026, 11, 18, 12, 0, 30, tzinfo=UTC)
PERIOD_START = minute_of(datetime(2026, 11, 1, tzinfo=UTC))
NINE = datetime(2026, 11, 18, 9, 0, tzinfo=UTC)


def hours_closed_before(hour: int) -> int:
    return minute_of(datetime(2026, 11, 18, hour, 0, tzinfo=UTC))


@pytest.fixture
def repo(database) -> UsageStore:
    customers = CustomerStore(database)
    for org_id, customer in (("org_a", "cus_a"), ("org_b", "cus_b"), ("org_free", None)):
        customers.upsert_org(org_id=org_id, name=org_id, billing_email=f"{org_id}@x.example",
                        plan="base_usage", now=NOW)
        with database.engine.begin() as conn:
            conn.execute(orgs.update().where(orgs.c.id == org_id)
                         .values(stripe_customer_id=customer))
    return UsageStore(database)


@pytest.fixture
def store(database, repo) -> MeterStore:
    return MeterStore(database)


def run_instance(repo: UsageStore, instance: str, org: str, start: datetime, minutes: int) -> None:
    beats = [Heartbeat(instance, org, start + timedelta(minutes=m), InstanceState.RUNNING)
             for m in range(minutes)]
    repo.ingest([instance], lambda owners: classify(
        beats, now=NOW, policy=MeteringPolicy(), known_orgs={"org_a", "org_b", "org_free"},
        instance_owners=owners))


def enqueue(store: MeterStore, closed_hour: int = 11) -> int:
    return store.enqueue_closed_hours(window_start_minute=PERIOD_START,
                                      closed_before_minute=hours_closed_before(closed_hour),
                                      now=NOW)


def outbox(store: MeterStore, org_id: str) -> list[tuple[str, int]]:
    return [(r.identifier, r.minutes) for r in store.records_for(org_id)]


def test_each_closed_hour_of_a_linked_org_becomes_one_record(store, repo):
    run_instance(repo, "a-1", "org_a", NINE, 150)  # 09:00-11:29
    run_instance(repo, "a-2", "org_a", NINE + timedelta(minutes=30), 20)  # 09:30-09:49
    assert enqueue(store) == 2  # 09 and 10 are closed, 11 is not
    assert outbox(store, "org_a") == [
        ("usage-org_a-2026111809-v1", 80),
        ("usage-org_a-2026111810-v1", 60),
    ]
    records = store.records_for("org_a")
    assert {r.state for r in records} == {PENDING}
    assert all(r.attempts == 0 and r.next_attempt_at == NOW for r in records)


def test_enqueueing_twice_creates_no_duplicate(store, repo):
    run_instance(repo, "a-1", "org_a", NINE, 120)
    assert enqueue(store) == 2
    assert enqueue(store) == 0
    assert len(store.records_for("org_a")) == 2


def test_late_minutes_become_a_correction_carrying_only_the_difference(store, repo):
    run_instance(repo, "a-1", "org_a", NINE, 45)
    assert enqueue(store) == 1
    run_instance(repo, "a-1", "org_a", NINE + timedelta(minutes=40), 10)  # 5 new, 5 repeats
    assert enqueue(store) == 1
    assert enqueue(store) == 0
    assert outbox(store, "org_a") == [
        ("usage-org_a-2026111809-v1", 45),
        ("usage-org_a-2026111809-v2", 5),
    ]
    assert sum(m for _, m in outbox(store, "org_a")) == 50


def test_orgs_without_a_stripe_customer_are_not_queued(store, repo):
    run_instance(repo, "f-1", "org_free", NINE, 120)
    assert enqueue(store) == 0
    assert store.records_for("org_free") == []


def test_an_org_linked_later_has_its_open_period_reported(store, repo, database):
    run_instance(repo, "f-1", "org_free", NINE, 120)
    enqueue(store)
    with database.engine.begin() as conn:
        conn.execute(orgs.update().where(orgs.c.id == "org_free")
                     .values(stripe_customer_id="cus_new"))
    assert enqueue(store) == 2


def test_usage_before_the_window_is_left_alone(store, repo):
    run_instance(repo, "a-1", "org_a", NINE, 120)
    queued = store.enqueue_closed_hours(window_start_minute=hours_closed_before(10),
                                        closed_before_minute=hours_closed_before(11), now=NOW)
    assert queued == 1
    assert outbox(store, "org_a") == [("usage-org_a-2026111810-v1", 60)]


def test_a_claimed_record_is_not_handed_to_another_sender_until_its_lease_ends(store, repo):
    run_instance(repo, "a-1", "org_a", NINE, 60)
    run_instance(repo, "b-1", "org_b", NINE, 60)
    enqueue(store)
    lease = NOW + timedelta(minutes=10)
    first = store.claim_due(now=NOW, due_before=NOW, limit=1, lease_until=lease)
    second = store.claim_due(now=NOW, due_before=NOW, limit=10, lease_until=lease)
    assert len(first) == len(second) == 1
    assert first[0].id != second[0].id
    assert store.claim_due(now=NOW, due_before=NOW, limit=10, lease_until=lease) == []
    later = lease + timedelta(seconds=1)
    assert len(store.claim_due(now=later, due_before=later, limit=10, lease_until=later)) == 2


def test_claims_carry_the_orgs_customer_as_it_is_now(store, repo, database):
    run_instance(repo, "a-1", "org_a", NINE, 60)
    enqueue(store)
    with database.engine.begin() as conn:
        conn.execute(orgs.update().where(orgs.c.id == "org_a")
                     .values(stripe_customer_id="cus_a2"))
    [claimed] = store.claim_due(now=NOW, due_before=NOW, limit=5, lease_until=NOW)
    assert claimed.stripe_customer_id == "cus_a2"


def test_outcomes_are_stored_and_counted(store, repo):
    run_instance(repo, "a-1", "org_a", NINE, 180)
    enqueue(store, closed_hour=12)
    one, two, three = store.claim_due(now=NOW, due_before=NOW, limit=3, lease_until=NOW)
    store.mark_sent(one, now=NOW, customer="cus_a", status=200)
    store.mark_retry(two, next_attempt_at=NOW + timedelta(seconds=30), error="server_error",
                     status=500, customer="cus_a")
    store.mark_failed(three, error="client_error: HTTP 400", status=400, customer="cus_a")
    stats = store.stats()
    assert (stats.pending, stats.sent, stats.failed) == (1, 1, 1)
    assert stats.oldest_pending_created_at == NOW
    [waiting] = store.oldest(PENDING, limit=5)
    assert (waiting.attempts, waiting.last_error, waiting.last_status) == (1, "server_error", 500)
    assert [r.id for r in store.oldest(FAILED, limit=5)] == [three.id]
    assert store.requeue_failed(now=NOW) == 1
    assert store.stats().failed == 0
