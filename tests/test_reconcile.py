"""Reconciliation of our invoices and reported usage with Stripe's invoices for a period."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from billing_engine.api import create_app
from billing_engine.customers.store import CustomerStore
from billing_engine.customers.tables import orgs
from billing_engine.db import Database, create_database, migrate
from billing_engine.invoicing.tables import invoices
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.stripe.circuit_breaker import CircuitBreaker
from billing_engine.stripe.client import ProviderInvoice, StripeProvider
from billing_engine.stripe.meters.store import SENT
from billing_engine.stripe.meters.tables import meter_outbox
from billing_engine.stripe.reconcile.rules import MismatchKind, OurInvoice, compare
from billing_engine.stripe.reconcile.service import Reconciler
from billing_engine.stripe.reconcile.store import ReconciliationStore
from tests.support.fake_stripe import INVOICES, FakeStripe

ROOT = Path(__file__).resolve().parent.parent
NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


# -- the comparison itself (pure) -----------------------------------------------------------------


def ours(org: str, total: int, *, customer: str | None = "cus_x", minutes: int = 0,
         status: str = "finalized", invoice_id: int = 1) -> OurInvoice:
    return OurInvoice(id=invoice_id, org_id=org, period="2026-11", period_start=NOV,
                      period_end=DEC, closed_at=DEC, stripe_customer_id=customer,
                      stripe_invoice_id=None, status=status, currency="usd",
                      used_minutes=minutes, total_cents=total)


def theirs(customer: str, total: int, *, invoice_id: str = "in_1", status: str = "paid",
           period_start: datetime = NOV, metadata: dict[str, str] | None = None
           ) -> ProviderInvoice:
    return ProviderInvoice(id=invoice_id, customer=customer, status=status, total_cents=total,
                           currency="usd", created=DEC, period_start=period_start,
                           period_end=DEC, metadata=metadata or {})


def kinds(mismatches) -> list[tuple[str, str | None]]:
    return [(m.kind.value, m.org_id) for m in mismatches]


def run_compare(our_side, their_side, reported=None, customers=None):
    return compare(period_key="2026-11", ours=our_side, theirs=their_side,
                   org_by_customer=customers or {}, reported_minutes=reported or {})


def test_matching_totals_and_usage_are_clean():
    mismatches, compared, unlinked, stripe_count = run_compare(
        [ours("org_a", 2000, customer="cus_a", minutes=600)],
        [theirs("cus_a", 2000)],
        reported={"org_a": 600},
    )
    assert (mismatches, compared, unlinked, stripe_count) == ([], 1, 0, 1)


def test_each_kind_of_difference_is_reported():
    mismatches, *_ = run_compare(
        [
            ours("org_missing", 2000, customer="cus_m", invoice_id=1),
            ours("org_amount", 2500, customer="cus_a", invoice_id=2),
            ours("org_usage", 2000, customer="cus_u", minutes=6000, invoice_id=3),
        ],
        [
            theirs("cus_a", 2000, invoice_id="in_a"),
            theirs("cus_u", 2000, invoice_id="in_u"),
            theirs("cus_stranger", 990, invoice_id="in_s"),
        ],
        reported={"org_usage": 5940},
        customers={"cus_stranger": "org_stranger"},
    )
    assert kinds(mismatches) == [
        ("missing_at_stripe", "org_missing"),
        ("amount_differs", "org_amount"),
        ("usage_not_reported", "org_usage"),
        ("missing_here", "org_stranger"),
    ]
    amount = mismatches[1]
    assert (amount.ours, amount.stripe, amount.stripe_invoice_ids) == (2500, 2000, ("in_a",))
    assert "-500 cents" in amount.detail
    usage = mismatches[2]
    assert (usage.ours, usage.stripe) == (6000, 5940)


def test_several_stripe_invoices_of_a_customer_in_the_period_are_summed():
    mismatches, *_ = run_compare(
        [ours("org_a", 2500, customer="cus_a")],
        [theirs("cus_a", 2000, invoice_id="in_1"), theirs("cus_a", 500, invoice_id="in_2")],
    )
    assert mismatches == []


def test_void_invoices_and_zero_totals_are_not_mismatches():
    mismatches, compared, _, stripe_count = run_compare(
        [ours("org_void", 2000, customer="cus_v", status="void"),
         ours("org_free", 0, customer="cus_f")],
        [theirs("cus_v", 2000, status="void"), theirs("cus_zero", 0)],
    )
    assert mismatches == [] and (compared, stripe_count) == (1, 1)


def test_orgs_without_a_customer_are_counted_but_not_compared():
    mismatches, compared, unlinked, _ = run_compare([ours("org_local", 2000, customer=None)], [])
    assert (mismatches, compared, unlinked) == ([], 0, 1)


def test_a_stripe_invoice_belongs_to_its_metadata_period_else_its_period_start_month():
    october = datetime(2026, 10, 1, tzinfo=UTC)
    mismatches, _, _, stripe_count = run_compare(
        [ours("org_a", 2000, customer="cus_a")],
        [theirs("cus_a", 2000, invoice_id="in_nov"),
         theirs("cus_a", 700, invoice_id="in_oct", period_start=october),
         theirs("cus_a", 300, invoice_id="in_tagged", period_start=NOV,
                metadata={"period": "2026-12"})],
    )
    assert mismatches == [] and stripe_count == 1


# -- against a real database and the fake Stripe --------------------------------------------------


@pytest.fixture
def fake() -> Iterator[FakeStripe]:
    with FakeStripe() as server:
        yield server


def seed(database: Database, *, org: str, customer: str | None, total: int, minutes: int,
         reported: int) -> None:
    CustomerStore(database).upsert_org(org_id=org, name=org, billing_email=f"{org}@x.example",
                                       plan="base_usage", now=NOV)
    hour = int(NOV.timestamp()) // 3600 + 5
    with database.engine.begin() as conn:
        conn.execute(orgs.update().where(orgs.c.id == org).values(stripe_customer_id=customer))
        conn.execute(invoices.insert().values(
            org_id=org, period="2026-11", period_start=NOV, period_end=DEC, plan="base_usage",
            currency="usd", included_minutes=6000, used_minutes=minutes, overage_minutes=0,
            subtotal_cents=total, credits_cents=0, total_cents=total, status="finalized",
            stripe_invoice_id=None, closed_at=DEC))
        if reported:
            conn.execute(meter_outbox.insert().values(
                org_id=org, hour=hour, version=1, identifier=f"usage-{org}-x-v1",
                minutes=reported, state=SENT, attempts=1, next_attempt_at=NOV,
                created_at=NOV, sent_at=NOV))


def stripe_provider(fake: FakeStripe) -> StripeProvider:
    return StripeProvider(api_key=fake.api_key, api_base=fake.url,
                          breaker=CircuitBreaker(clock=lambda: 0.0))


def test_a_run_lists_stripes_invoices_for_the_period_and_keeps_its_result(database, fake):
    seed(database, org="org_ok", customer="cus_ok", total=2000, minutes=600, reported=600)
    seed(database, org="org_short", customer="cus_short", total=2500, minutes=7200,
         reported=7200)
    nov_end = int(DEC.timestamp())
    fake.add_invoice(customer="cus_ok", total=2000, created=nov_end,
                     period_start=int(NOV.timestamp()), period_end=nov_end, status="paid")
    fake.add_invoice(customer="cus_short", total=2250, created=nov_end,
                     period_start=int(NOV.timestamp()), period_end=nov_end, invoice_id="in_sh")
    fake.add_invoice(customer="cus_ok", total=9999, created=int(NOV.timestamp()) - 86400 * 20)
    store = ReconciliationStore(database)

    report = Reconciler(store=store, provider=stripe_provider(fake), metrics=EngineMetrics(),
                        clock=lambda: NOW).run("2026-11")

    assert [(m.kind, m.org_id, m.ours, m.stripe) for m in report.mismatches] == [
        (MismatchKind.AMOUNT_DIFFERS, "org_short", 2500, 2250)]
    assert (report.our_invoices, report.stripe_invoices) == (2, 2)
    [listing] = fake.requests_to(INVOICES)
    assert listing.query["created[gte]"] == str(int(NOV.timestamp()))
    assert listing.query["created[lt]"] == str(int((DEC + timedelta(days=7)).timestamp()))
    last = store.last_reconciliation()
    assert last is not None and (last.period, last.mismatches, last.provider) == (
        "2026-11", 1, "stripe")
    assert "in_sh" in report.render_text()


def test_the_engine_runs_it_and_the_gauge_shows_the_last_run(pg_database, settings, clock,
                                                             admin, fake):
    seed(pg_database, org="org_a", customer="cus_a", total=2000, minutes=600, reported=540)
    configured = replace(settings, stripe_secret_key=fake.api_key, stripe_api_base=fake.url)
    app = create_app(configured, database=pg_database, metrics=EngineMetrics(), clock=clock,
                     housekeeping=False)
    with TestClient(app) as client:
        assert client.get("/debug/reconciliation/last", headers=admin).json()["ran"] is False
        assert client.post("/admin/reconciliation/run", params={"period": "2026-11"}
                           ).status_code == 401
        bad = client.post("/admin/reconciliation/run", params={"period": "2026-13"},
                          headers=admin)
        assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "period"

        body = client.post("/admin/reconciliation/run", params={"period": "2026-11"},
                           headers=admin).json()

        assert [m["kind"] for m in body["mismatches"]] == [
            "missing_at_stripe", "usage_not_reported"]
        registry = app.state.services.metrics.registry
        assert registry.get_sample_value("reconciliation_mismatches") == 2
        last = client.get("/debug/reconciliation/last", headers=admin).json()
        assert last["ran"] is True and last["mismatch_count"] == 2

        fake.fail_next(1, status=500, path=INVOICES)
        failed = client.post("/admin/reconciliation/run", params={"period": "2026-11"},
                             headers=admin)
        assert failed.status_code == 502 and "HTTP 500" in failed.json()["message"]


# -- the command line -----------------------------------------------------------------------------


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "billing_engine", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'billing.db'}"
    migrate(url)
    return url


def base_env(url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRIPE_")}
    return {**env, "DATABASE_URL": url, "APP_ENV": "test"}


@pytest.mark.processes
def test_cli_prints_the_report_and_exits_1_on_mismatches_0_when_clean(sqlite_url, fake):
    database = create_database(sqlite_url)
    try:
        seed(database, org="org_a", customer="cus_a", total=2000, minutes=60, reported=60)
    finally:
        database.dispose()
    env = {**base_env(sqlite_url), "STRIPE_SECRET_KEY": fake.api_key, "STRIPE_API_BASE": fake.url}

    dirty = cli("reconcile", "--period", "2026-11", env=env)

    assert dirty.returncode == 1, dirty.stderr
    assert "Reconciliation of 2026-11 against Stripe" in dirty.stdout
    assert "missing_at_stripe" in dirty.stdout and "org_a (cus_a)" in dirty.stdout

    fake.add_invoice(customer="cus_a", total=2000, created=int(DEC.timestamp()),
                     period_start=int(NOV.timestamp()))
    clean = cli("reconcile", "--period", "2026-11", env=env)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "mismatches: 0" in clean.stdout


@pytest.mark.processes
def test_cli_in_simulated_mode_says_so(sqlite_url):
    database = create_database(sqlite_url)
    try:
        seed(database, org="org_a", customer="cus_a", total=2000, minutes=60, reported=45)
    finally:
        database.dispose()

    result = cli("reconcile", "--period", "2026-11", "--json", env=base_env(sqlite_url))

    assert result.returncode == 1, result.stderr
    report = json.loads(result.stdout)
    assert report["simulated"] is True and report["provider"] == "simulated"
    assert "mirror our own" in report["note"]
    assert [m["kind"] for m in report["mismatches"]] == ["usage_not_reported"]


@pytest.mark.processes
def test_cli_refuses_a_malformed_period(sqlite_url):
    result = cli("reconcile", "--period", "November", env=base_env(sqlite_url))
    assert result.returncode == 2
    assert "--period" in result.stderr and "YYYY-MM" in result.stderr
