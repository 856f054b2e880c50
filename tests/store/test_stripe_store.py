"""The Stripe inbox, subscriptions and payments: one contract on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest

from billing_engine.customers.store import CustomerStore
from billing_engine.db import Database
from billing_engine.payments.rules import PaymentAttempt, PaymentOutcome
from billing_engine.payments.store import PaymentStore
from billing_engine.stripe.webhooks.store import InboxStore, StoredEvent, Tx
from billing_engine.subscriptions.rules import SubscriptionState
from billing_engine.subscriptions.store import SubscriptionStore

NOW = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


def store_of(database: Database) -> InboxStore:
    return InboxStore(database)


def put_event(store: InboxStore, event_id: str, *, created: datetime = NOW,
              customer: str | None = "cus_1", now: datetime = NOW) -> str:
    return store.store_event(event_id=event_id, type="invoice.paid", created=created,
                             livemode=False, customer_id=customer, payload="{}", now=now)


def attempt(event_id: str, org_id: str = "org_a", at: datetime = NOW) -> PaymentAttempt:
    return PaymentAttempt(
        event_id=event_id, org_id=org_id, customer_id="cus_1", invoice_id="in_1",
        charge_id=f"ch_{event_id}", payment_intent_id=None, amount_cents=2000, currency="usd",
        outcome=PaymentOutcome.SUCCEEDED, method="card", failure_code=None, failure_reason=None,
        failure_message=None, attempt_number=1, attempted_at=at,
    )


def make_org(database: Database, org_id: str) -> None:
    CustomerStore(database).upsert_org(org_id=org_id, name=org_id,
                                       billing_email=f"{org_id}@x.io", plan="free", now=NOW)


def test_an_event_is_stored_once_and_keeps_its_first_copy(database):
    store = store_of(database)
    assert put_event(store, "evt_1") == "pending"
    assert put_event(store, "evt_1", customer="cus_other") == "pending"
    assert store.get_event("evt_1").customer_id == "cus_1"


def test_handling_applies_once_and_a_second_claim_finds_it_done(database):
    make_org(database, "org_a")
    store = store_of(database)
    put_event(store, "evt_1")

    def apply(tx: Tx, event: StoredEvent):
        return "handled", "recorded", "org_a", tx.add_payment(attempt(event.event_id))

    first = store.handle("evt_1", apply, now=NOW)
    assert first is not None and first[1] is True
    assert store.handle("evt_1", apply, now=NOW) is None
    record = store.get_event("evt_1")
    assert (record.status, record.attempts, record.org_id) == ("handled", 1, "org_a")
    payments, _ = PaymentStore(database).payments_of("org_a", limit=10)
    assert len(payments) == 1


def test_a_failing_effect_leaves_nothing_behind_and_the_failure_is_counted(database):
    make_org(database, "org_a")
    store = store_of(database)
    put_event(store, "evt_old", created=NOW - timedelta(hours=2))
    put_event(store, "evt_new", created=NOW - timedelta(hours=1))

    def apply(tx: Tx, event: StoredEvent):
        tx.add_payment(attempt(event.event_id))
        raise RuntimeError("boom after a write")

    for event_id in ("evt_new", "evt_old"):
        with pytest.raises(RuntimeError):
            store.handle(event_id, apply, now=NOW)
        store.record_failure(event_id, "RuntimeError: boom", now=NOW)
    assert PaymentStore(database).payments_of("org_a", limit=10) == ([], [])
    later = NOW + timedelta(minutes=5)
    count, oldest = store.failing_summary(now=later)
    assert (count, oldest) == (2, NOW)
    assert [e.event_id for e in store.list_failing(now=later, limit=10)] == ["evt_old", "evt_new"]
    assert store.get_event("evt_old").attempts == 1
    assert store.open_events_of_customer("cus_1") == ["evt_old", "evt_new"]


def test_a_pending_event_counts_as_failing_only_after_its_grace(database):
    store = store_of(database)
    put_event(store, "evt_p")
    assert store.failing_summary(now=NOW + timedelta(seconds=10))[0] == 0
    assert store.failing_summary(now=NOW + timedelta(minutes=2))[0] == 1


def test_two_concurrent_deliveries_of_one_event_apply_it_once(database):
    make_org(database, "org_a")
    store = store_of(database)
    put_event(store, "evt_race")
    barrier = threading.Barrier(2)
    results: list[object] = []

    def apply(tx: Tx, event: StoredEvent):
        return "handled", "recorded", "org_a", tx.add_payment(attempt(event.event_id))

    def run() -> None:
        barrier.wait()
        results.append(store.handle("evt_race", apply, now=NOW))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(r is None for r in results) == [False, True]
    assert len(PaymentStore(database).payments_of("org_a", limit=10)[0]) == 1


def test_orgs_come_with_their_subscriptions_in_one_read(database):
    make_org(database, "org_a")
    make_org(database, "org_b")
    store = store_of(database)
    put_event(store, "evt_s")
    state = SubscriptionState(
        subscription_id="sub_1", customer_id="cus_1", status="active",
        price_ids=("price_team_monthly", "price_metered"), current_period_start=NOW,
        current_period_end=NOW + timedelta(days=30), cancel_at_period_end=False,
        event_created=NOW,
    )

    def apply(tx: Tx, event: StoredEvent):
        tx.save_subscription(state, org_id="org_a", plan="team", event_id=event.event_id)
        return "handled", "saved", "org_a", None

    store.handle("evt_s", apply, now=NOW)
    found = SubscriptionStore(database).orgs_with_subscriptions(["org_a", "org_b", "org_ghost"])
    assert sorted(found) == ["org_a", "org_b"]
    assert found["org_a"][1] == [state] and found["org_b"][1] == []
    assert SubscriptionStore(database).subscriptions_of(["org_a"]) == {"org_a": [state]}


def test_retention_deletes_only_what_is_older_than_the_cutoff(database):
    make_org(database, "org_a")
    store = store_of(database)
    for event_id, at in (("evt_a", NOW - timedelta(days=100)), ("evt_b", NOW)):
        put_event(store, event_id, now=at)
        store.handle(
            event_id,
            lambda tx, e, at=at: ("handled", "x", "org_a", tx.add_payment(attempt(e.event_id,
                                                                                 at=at))),
            now=at,
        )
    cutoff = NOW - timedelta(days=90)
    deleted = (*PaymentStore(database).delete_before(cutoff), store.delete_done_before(cutoff))
    assert deleted == (1, 0, 1)
    remaining, _ = PaymentStore(database).payments_of("org_a", limit=10)
    assert [r.event_id for r in remaining] == ["evt_b"]
    assert store.get_event("evt_a") is None and store.get_event("evt_b") is not None
