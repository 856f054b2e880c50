"""Reconciliation runs by itself: right after a period closes and daily, once however many
replicas run, comparing per customer our billed minutes, the minutes Stripe accepted from us and
the minutes its meter aggregated, and the amounts due after credits on both sides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient

from billing_engine.api import create_app
from billing_engine.customers.store import CustomerStore
from billing_engine.customers.tables import orgs
from billing_engine.invoicing.tables import invoices
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.stripe.circuit_breaker import CircuitBreaker
from billing_engine.stripe.client import MeterEvent, StripeProvider
from billing_engine.stripe.meters.store import SENT
from billing_engine.stripe.meters.tables import meter_outbox
from billing_engine.stripe.reconcile.tables import reconciliation_runs
from billing_engine.wiring import build_services
from tests.support.clock import FrozenClock
from tests.support.fake_stripe import FakeStripe

NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
NOV_HOUR = int(NOV.timestamp()) // 3600


def seed(database, fake: FakeStripe, *, org: str, customer: str, minutes: int,
         subtotal: int, credits: int, stripe_total: int, credited_in_stripe: bool = True
         ) -> None:
    """A closed November: our invoice, the outbox rows Stripe accepted, the meter events it
    holds and its own invoice with the customer's balance (our credit) applied."""
    CustomerStore(database).upsert_org(org_id=org, name=org, billing_email=f"{org}@x.example",
                                       plan="base_usage", now=NOV)
    provider = StripeProvider(api_key=fake.api_key, api_base=fake.url,
                              breaker=CircuitBreaker(clock=lambda: 0.0))
    fake.support.add_customer(customer)
    with database.engine.begin() as conn:
        conn.execute(orgs.update().where(orgs.c.id == org).values(stripe_customer_id=customer))
        conn.execute(invoices.insert().values(
            org_id=org, period="2026-11", period_start=NOV, period_end=DEC, plan="base_usage",
            currency="usd", included_minutes=6000, used_minutes=minutes, overage_minutes=0,
            subtotal_cents=subtotal, credits_cents=credits, total_cents=subtotal - credits,
            status="finalized", stripe_invoice_id=None, closed_at=DEC))
        for hour, part in enumerate((minutes // 2, minutes - minutes // 2)):
            identifier = f"usage-{org}-{hour}-v1"
            conn.execute(meter_outbox.insert().values(
                org_id=org, hour=NOV_HOUR + hour, version=1, identifier=identifier,
                minutes=part, state=SENT, attempts=1, next_attempt_at=NOV,
                stripe_customer_id=customer, created_at=NOV, sent_at=NOV))
            provider.report_meter_event(MeterEvent(
                identifier=identifier, event_name="instance_minutes",
                stripe_customer_id=customer, value=part,
                timestamp=(NOV_HOUR + hour) * 3600))
    if credits and credited_in_stripe:
        fake.support._create_transaction(customer, {"amount": str(-credits),
                                                    "currency": "usd"}, None)
    fake.support.create_invoice(customer=customer, total=stripe_total,
                                created=int(DEC.timestamp()), period="2026-11")


def runs(database) -> list[tuple[str, str]]:
    with database.engine.connect() as conn:
        return [(r.period, r.trigger) for r in conn.execute(
            reconciliation_runs.select().order_by(reconciliation_runs.c.id))]


def test_after_close_and_daily_runs_happen_once_across_replicas_with_the_three_numbers(
        pg_database, configured, fake, staff_key_free_admin):
    clock = FrozenClock(DEC + timedelta(minutes=30))  # November still in its close grace
    fake.support.add_meter("instance_minutes")
    # Credited 500 here and in Stripe: both ask 1,500 cents, nothing to report.
    seed(pg_database, fake, org="org_ok", customer="cus_ok", minutes=600, subtotal=2000,
         credits=500, stripe_total=2000)
    # Stripe answered 200 to every event, then its validation dropped them: nothing billed.
    seed(pg_database, fake, org="org_dropped", customer="cus_dropped", minutes=300,
         subtotal=2000, credits=0, stripe_total=2000)
    fake.support.invalidate_events("cus_dropped")
    metrics = EngineMetrics()
    app = create_app(configured, database=pg_database, metrics=metrics, clock=clock,
                     housekeeping=False)
    replica = build_services(configured, database=pg_database, clock=clock)
    with TestClient(app) as client:
        services = app.state.services
        services.housekeeper.run_round()
        assert runs(pg_database) == []  # November is not closed yet: nothing to compare

        clock.advance(minutes=90)  # the close job closes November, then it is reconciled
        services.housekeeper.run_round()
        replica.housekeeper.run_round()
        clock.advance(minutes=5)
        services.housekeeper.run_round()
        replica.housekeeper.run_round()
        assert runs(pg_database) == [("2026-11", "period_close")]

        clock.advance(days=1)  # the daily run, once; the after-close run not again
        replica.housekeeper.run_round()
        services.housekeeper.run_round()
        assert runs(pg_database) == [("2026-11", "period_close"), ("2026-11", "daily")]
        registry = metrics.registry
        assert registry.get_sample_value("billing_reconciliation_mismatches",
                                         {"kind": "usage_not_aggregated"}) == 1
        assert registry.get_sample_value("billing_reconciliation_mismatches",
                                         {"kind": "amount_differs"}) == 0
        assert registry.get_sample_value(
            "billing_reconciliation_last_run_timestamp_seconds") == clock().timestamp()
        summaries = fake.requests_to(
            f"/v1/billing/meters/{next(iter(fake.support.meters))}/event_summaries")
        assert {r.query["start_time"] for r in summaries} == {str(int(NOV.timestamp()))}
        assert {r.query["end_time"] for r in summaries} == {str(int(DEC.timestamp()))}

        operator = staff_key_free_admin(client, "operator")
        listed = client.get("/debug/reconciliation/runs", headers=operator).json()["runs"]
        assert [r["by_kind"] for r in listed] == [{"usage_not_aggregated": 1}] * 2
        detail = client.get(f"/debug/reconciliation/runs/{listed[0]['id']}",
                            params={"org_id": "org_dropped"}, headers=operator).json()
        [mismatch] = detail["mismatches"]
        assert (mismatch["billed_minutes"], mismatch["sent_minutes"],
                mismatch["stripe_minutes"]) == (300, 300, 0)
        assert (mismatch["our_cents"], mismatch["stripe_cents"]) == (2000, 2000)
        assert (mismatch["ours"], mismatch["stripe"]) == (300, 0)
        assert detail["aggregated_checked"] is True
        assert client.get("/debug/reconciliation/runs/999999", headers=operator
                          ).status_code == 404
        assert client.get("/debug/reconciliation/runs", headers=staff_key_free_admin(
            client, "support")).status_code == 403
    replica.close()


def test_an_uncredited_stripe_invoice_is_an_amount_difference_after_credits(
        pg_database, configured, fake):
    fake.support.add_meter("instance_minutes")
    # We credited 500; Stripe never got the credit, so it asks the full 2,000.
    seed(pg_database, fake, org="org_c", customer="cus_c", minutes=600, subtotal=2000,
         credits=500, stripe_total=2000, credited_in_stripe=False)
    services = build_services(configured, database=pg_database,
                              clock=FrozenClock(DEC + timedelta(hours=2)))
    report = services.reconciler.run("2026-11")
    assert [(m.kind.value, m.our_cents, m.stripe_cents) for m in report.mismatches] == [
        ("amount_differs", 1500, 2000)]
    services.close()


def test_scheduled_runs_can_be_turned_off_and_the_setting_is_checked(settings):
    from billing_engine.settings import Settings, SettingsError

    env = {"APP_ENV": "test", "ADMIN_API_KEY": settings.admin_api_key}
    assert Settings.from_env({**env, "RECONCILIATION_INTERVAL_SECONDS": "0"}
                             ).reconciliation_interval_seconds == 0
    with pytest.raises(SettingsError, match="RECONCILIATION_INTERVAL_SECONDS"):
        Settings.from_env({**env, "RECONCILIATION_INTERVAL_SECONDS": "5"})


@pytest.fixture
def staff_key_free_admin(settings):
    """Staff keys made through an app's own client (the shared `client` fixture is another
    app)."""
    from tests.support.builders import bearer

    def make(client: TestClient, role: str) -> dict[str, str]:
        answer = client.post("/admin/staff-keys", headers={"X-Admin-Key": settings.admin_api_key},
                             json={"name": f"{role}-key", "role": role})
        assert answer.status_code == 201, answer.text
        return bearer(answer.json()["key"])

    return make


def test_a_draft_stripe_invoice_is_not_compared_for_money_until_finalized():
    from billing_engine.stripe.client import ProviderInvoice
    from billing_engine.stripe.reconcile.rules import OurInvoice, compare

    ours = OurInvoice(id=1, org_id="org_d", period="2026-11", period_start=NOV, period_end=DEC,
                      closed_at=DEC, stripe_customer_id="cus_d", stripe_invoice_id=None,
                      status="finalized", currency="usd", used_minutes=60, total_cents=1500)

    def theirs(status: str, due: int) -> ProviderInvoice:
        return ProviderInvoice(id="in_d", customer="cus_d", status=status, total_cents=2000,
                               currency="usd", created=DEC, period_start=NOV, period_end=DEC,
                               metadata={}, amount_due_cents=due)

    # The draft still shows the whole total: the credit on the balance is applied at finalizing.
    draft, *_ = compare(period_key="2026-11", ours=[ours], theirs=[theirs("draft", 2000)],
                        org_by_customer={}, reported_minutes={"org_d": 60})
    assert draft == []
    final, *_ = compare(period_key="2026-11", ours=[ours], theirs=[theirs("open", 2000)],
                        org_by_customer={}, reported_minutes={"org_d": 60})
    assert [(m.kind.value, m.our_cents, m.stripe_cents) for m in final] == [
        ("amount_differs", 1500, 2000)]
