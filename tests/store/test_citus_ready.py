"""Ready for Citus: every statement the engine sends to a usage, rollup, invoice or payment table
names the org (the column those tables would be distributed on; instances go by their id), or
comes from a documented fleet-wide job. The statements are captured with SQLAlchemy events while
the engine does its work on PostgreSQL: a fleet and its retries, the billing card and usage
views, support views and repairs, Stripe events, credits, the period close, the meter flush,
reconciliation, and every housekeeping job."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from alerts.budget.store import BudgetNoticeStore
from alerts.store.migrate import migrate as migrate_alerts
from billing_core.catalogue import DEFAULT_PLANS_FILE, load_plans
from billing_core.periods import period_containing
from billing_engine.api import create_app
from tests.support.builders import hb, new_org, post_heartbeats
from tests.support.citus import (
    DISTRIBUTED,
    FLEET_WIDE,
    REFERENCE,
    captured_statements,
    shard_violations,
)
from tests.support.stripe_events import (
    WEBHOOK_SECRET,
    charge,
    checkout_completed,
    deliver,
    event,
    invoice,
    new_id,
)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def engine_app(pg_database, settings, metrics, clock, tmp_path):
    from dataclasses import replace

    configured = replace(settings, stripe_webhook_secret=WEBHOOK_SECRET,
                         usage_archive_dir=tmp_path / "archive")
    app = create_app(configured, database=pg_database, metrics=metrics, clock=clock,
                     housekeeping=False)
    with TestClient(app) as client:
        yield client


def tour(client: TestClient, admin: dict[str, str], clock) -> None:
    """What a day of the engine does, route by route and job by job."""
    services = client.app.state.services  # type: ignore[attr-defined]
    orgs = [new_org(client, admin, plan=plan) for plan in ("free", "base_usage", "team")]
    now = clock()
    for org in orgs:
        batch = [hb(f"{org}-i{i}", org, now - timedelta(minutes=m)) for i in range(3)
                 for m in range(0, 90, 7)]
        assert post_heartbeats(client, admin, batch).status_code == 200
        assert post_heartbeats(client, admin, batch[:10]).status_code == 200  # a retry
    org = orgs[0]
    for path in (f"/v1/billing?org_id={org}", f"/v1/usage/{org}/daily?days=30",
                 f"/v1/instances/{org}-i1", f"/v1/orgs/{org}/instances",
                 f"/v1/entitlements/{org}", f"/v1/invoices?org_id={org}",
                 f"/v1/credits?org_id={org}", f"/v1/payments?org_id={org}",
                 f"/debug/usage/{org}/daily", f"/debug/throttle/{org}-i1", "/v1/usage/top",
                 "/debug/meters/pending", "/debug/webhooks/failing",
                 f"/v1/customers?q={org[:8]}"):
        answer = client.get(path, headers=admin)
        assert answer.status_code == 200, (path, answer.text)
    for method, path in (("POST", f"/admin/quota/{org}/refresh"),
                         ("POST", f"/admin/throttle/{org}/reset-daily"),
                         ("POST", f"/admin/entitlements/{org}/recompute")):
        answer = client.request(method, path, headers=admin)
        assert answer.status_code == 200, (path, answer.text)
    granted = client.post("/admin/credits", headers=admin,
                          json={"org_id": org, "amount_cents": 500, "reason": "goodwill"})
    assert granted.status_code in (200, 201), granted.text
    customer = new_id("cus")
    deliver(client, event("checkout.session.completed", checkout_completed(orgs[1], customer)))
    paid = charge(customer, 2000)
    deliver(client, event("charge.succeeded", paid))
    deliver(client, event("invoice.paid", invoice(customer, 2000, paid=True)))
    deliver(client, event("charge.refunded", {**paid, "amount_refunded": 500}))
    services.meters.flush(force=True)
    # Next month: last month closes, its meter records go out, reconciliation compares.
    clock.now = period_containing(now).end + timedelta(hours=2)
    closed = client.post("/admin/invoices/close", headers=admin,
                         params={"period": period_containing(now).key})
    assert closed.status_code == 200, closed.text
    services.meters.flush(force=True)
    services.reconciler.run(period_containing(now).key)
    services.housekeeper.run_round()  # every gauge and every job
    services.usage_retention.run()
    services.retention.run()
    # The alerts process' budget round, through the query the engine publishes for it.
    migrate_alerts(services.database.url)
    BudgetNoticeStore(services.database.engine).record_crossings(
        period_containing(now), load_plans(DEFAULT_PLANS_FILE), now=clock(),
        renderer=lambda orgs: _NoMessages())


class _NoMessages:
    """A budget round's renderer that queues nothing: only the engine's statements matter."""

    def org_messages(self, crossings: object) -> list[object]:
        return []

    def closing_messages(self) -> list[object]:
        return []


def test_every_statement_on_a_distributed_table_names_its_org_or_is_a_fleet_wide_job(
        engine_app, admin, clock):
    engine = engine_app.app.state.services.database.engine  # type: ignore[attr-defined]
    with captured_statements(engine) as seen:
        tour(engine_app, admin, clock)
    touching = {s for s in seen if any(re.search(rf"\b{t}\b", s.sql) for t in DISTRIBUTED)}
    assert len(touching) > 40  # the tour reached the billing tables many ways
    assert [str(v) for v in shard_violations(seen)] == []
    # The hot paths are not among the fleet-wide jobs.
    for hot in ("ingest", "card_inputs", "daily_minutes", "period_minutes",
                "throttle_inputs"):
        assert not [key for key in FLEET_WIDE if key[1] == hot]


def test_the_scaling_guide_lists_the_fleet_wide_jobs_and_the_tables_as_the_test_does():
    guide = (ROOT / "docs" / "scaling.md").read_text()
    listed = set(re.findall(r"^\| `([\w/]+\.py)` \| `(\w+)` \|", guide, re.MULTILINE))
    assert listed == set(FLEET_WIDE)
    for table, column in DISTRIBUTED.items():
        assert f"create_distributed_table('{table}', '{column}'" in guide, table
    for table in REFERENCE:
        assert f"create_reference_table('{table}')" in guide, table


def test_every_fleet_wide_entry_names_a_function_that_exists():
    for module, function in FLEET_WIDE:
        assert re.search(rf"def {function}\b", (ROOT / module).read_text()), (module, function)
