"""Migration 0013 on a database the old engine filled: the org goes into every key of the
per-org tables (docs/scaling.md#past-one-postgresql). Every row comes through unchanged, each
invoice line gets its invoice's org, new rows are still numbered on both backends, and the
downgrade gives back the old tables with the same rows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, column, create_engine, pool, select, table, text

from billing_engine.db.migrate import migrate_to, schema_version
from billing_engine.invoicing.tables import credits
from billing_engine.payments.tables import payment_attempts
from devstack.servers import scratch_database
from tests.support.citus import key_violations

AT = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
OCT = (datetime(2026, 10, 1, tzinfo=UTC), datetime(2026, 11, 1, tzinfo=UTC))
NOV = (datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 12, 1, tzinfo=UTC))
TABLES = ("orgs", "invoices", "credits", "invoice_lines", "payment_attempts", "refunds",
          "meter_outbox", "subscriptions", "stripe_invoices", "heartbeat_refusals")


@pytest.fixture(params=["sqlite", "postgres"])
def at_0012(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        migrate_to(url, "0012")
        yield url
        return
    yield request.getfixturevalue("pg_at_0012")


@pytest.fixture
def pg_at_0012(pg_server_url: str) -> Iterator[str]:
    with scratch_database(pg_server_url, prefix="billing_0013",
                          setup=lambda u: migrate_to(u, "0012")) as url:
        yield url


def insert(conn: Any, into: str, /, **values: Any) -> int | None:
    """One row, written through the table as 0012 left it; returns its id when the table
    numbers its rows."""
    stmt = table(into, *(column(c) for c in values)).insert().values(**values)
    if into not in ("invoices", "credits", "payment_attempts", "meter_outbox"):
        conn.execute(stmt)
        return None
    return int(conn.execute(stmt.returning(column("id"))).scalar_one())


def invoice(conn: Any, org: str, period: str, bounds: tuple[datetime, datetime],
            total: int) -> int | None:
    return insert(conn, "invoices", org_id=org, period=period, period_start=bounds[0],
                  period_end=bounds[1], plan="base_usage", currency="usd",
                  included_minutes=6000, used_minutes=6600, overage_minutes=600,
                  subtotal_cents=total, credits_cents=0, total_cents=total, status="finalized",
                  stripe_invoice_id=None, closed_at=AT)


def line(conn: Any, invoice_id: int | None, position: int, kind: str, cents: int,
         credit_id: int | None = None) -> None:
    insert(conn, "invoice_lines", invoice_id=invoice_id, position=position, kind=kind,
           description=f"{kind} line", minutes=600 if kind == "overage" else None,
           unit_amount_cents=cents, amount_cents=cents, credit_id=credit_id)


def fill(engine: Engine) -> dict[int | None, str]:
    """Two orgs' invoices with their lines (one paid with a credit), payments, refunds, meter
    records, subscriptions and the rest, as the engine at 0012 wrote them. Returns each
    invoice's org by its id."""
    with engine.begin() as conn:
        for org in ("org_a", "org_b"):
            insert(conn, "orgs", id=org, name=org, billing_email=f"{org}@x.example",
                   plan="base_usage", stripe_customer_id=f"cus_{org}", created_at=AT,
                   updated_at=AT)
        credit = insert(conn, "credits", org_id="org_a", amount_cents=500, remaining_cents=0,
                        reason="outage", granted_by="admin", granted_at=AT,
                        idempotency_key="k1", stripe_status="legacy")
        insert(conn, "credits", org_id="org_b", amount_cents=300, remaining_cents=300,
               reason="goodwill", granted_by="admin", granted_at=AT, idempotency_key=None)
        a_oct = invoice(conn, "org_a", "2026-10", OCT, 2500)
        b_oct = invoice(conn, "org_b", "2026-10", OCT, 1900)
        a_nov = invoice(conn, "org_a", "2026-11", NOV, 1900)
        line(conn, a_oct, 1, "base_fee", 1900)
        line(conn, a_oct, 2, "overage", 1100)
        line(conn, a_oct, 3, "credit", -500, credit_id=credit)
        line(conn, b_oct, 1, "base_fee", 1900)
        line(conn, a_nov, 1, "base_fee", 1900)
        for n, org in enumerate(("org_a", "org_a", "org_b")):
            insert(conn, "payment_attempts", event_id=f"evt_{n}", org_id=org,
                   customer_id=f"cus_{org}", invoice_id=f"in_{n}", charge_id=f"ch_{n}",
                   payment_intent_id=f"pi_{n}", amount_cents=1900, currency="usd",
                   outcome="succeeded", method="card", refunded_cents=0, attempted_at=AT,
                   recorded_at=AT)
            insert(conn, "meter_outbox", org_id=org, hour=493_000 + n, version=1,
                   identifier=f"usage-{org}-h{n}-v1", minutes=60, state="sent", attempts=1,
                   next_attempt_at=AT, created_at=AT, sent_at=AT, generation=0)
            insert(conn, "subscriptions", id=f"sub_{n}", org_id=org, customer_id=f"cus_{org}",
                   status="active", price_ids="price_1", plan="base_usage",
                   cancel_at_period_end=False, event_created_at=AT, event_id=f"evt_s{n}",
                   updated_at=AT)
            insert(conn, "stripe_invoices", org_id=org, stripe_invoice_id=f"in_{n}",
                   status="paid", period="2026-10", event_created=AT, updated_at=AT)
            insert(conn, "heartbeat_refusals", hour=493_000 + n, heartbeats=3 + n, org_id=org,
                   reason="unknown_instance")
        for n, org in enumerate(("org_a", "org_b")):
            insert(conn, "refunds", refund_key=f"re_{n}", event_id=f"evt_r{n}", org_id=org,
                   charge_id=f"ch_{n}", amount_cents=200, currency="usd", refunded_at=AT,
                   recorded_at=AT)
    return {a_oct: "org_a", b_oct: "org_b", a_nov: "org_a"}


def rows(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables the migration touches, in a stable order."""
    found = {}
    with engine.connect() as conn:
        for name in TABLES:
            result = conn.execute(select(text("*")).select_from(table(name)))
            found[name] = sorted((dict(r._mapping) for r in result), key=repr)
    return found


def test_every_row_comes_through_and_each_line_gets_its_invoices_org(at_0012):
    engine = create_engine(at_0012, poolclass=pool.NullPool)
    try:
        org_of_invoice = fill(engine)
        before = rows(engine)
        migrate_to(at_0012, "0013")
        assert schema_version(at_0012) == "0013"
        after = rows(engine)

        lines = after.pop("invoice_lines")
        assert [r["org_id"] for r in lines] == [org_of_invoice[r["invoice_id"]] for r in lines]
        assert sorted(({k: v for k, v in r.items() if k != "org_id"} for r in lines),
                      key=repr) == before.pop("invoice_lines")
        assert after == before

        # New rows are still numbered by the database, after the old ones, on both backends.
        with engine.begin() as conn:
            new_credit = conn.execute(credits.insert().values(
                org_id="org_b", amount_cents=100, remaining_cents=100, reason="r",
                granted_by="admin", granted_at=AT).returning(credits.c.id)).scalar_one()
            new_attempt = conn.execute(payment_attempts.insert().values(
                event_id="evt_new", org_id="org_b", amount_cents=1, currency="usd",
                outcome="failed", method="card", refunded_cents=0, attempted_at=AT,
                recorded_at=AT).returning(payment_attempts.c.id)).scalar_one()
        assert new_credit > max(r["id"] for r in before["credits"])
        assert new_attempt > max(r["id"] for r in before["payment_attempts"])
    finally:
        engine.dispose()


def test_the_same_event_may_record_an_attempt_once_per_org(at_0012):
    migrate_to(at_0012, "0013")
    engine = create_engine(at_0012, poolclass=pool.NullPool)
    attempt = {"event_id": "evt_1", "amount_cents": 1, "currency": "usd", "outcome": "failed",
               "method": "card", "refunded_cents": 0, "attempted_at": AT, "recorded_at": AT}
    try:
        with engine.begin() as conn:
            conn.execute(payment_attempts.insert().values(org_id="org_a", **attempt))
            conn.execute(payment_attempts.insert().values(org_id="org_b", **attempt))
        with pytest.raises(Exception, match="(?i)unique"), engine.begin() as conn:
            conn.execute(payment_attempts.insert().values(org_id="org_a", **attempt))
    finally:
        engine.dispose()


def test_the_downgrade_gives_back_the_old_tables_with_the_same_rows(at_0012):
    engine = create_engine(at_0012, poolclass=pool.NullPool)
    try:
        fill(engine)
        before = rows(engine)
        migrate_to(at_0012, "0013")
        migrate_to(at_0012, "0012")
        assert schema_version(at_0012) == "0012"
        assert rows(engine) == before
        migrate_to(at_0012, "0013")  # and up again
    finally:
        engine.dispose()


def test_on_postgres_0013_gives_citus_every_key_it_asked_for(pg_at_0012):
    engine = create_engine(pg_at_0012, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            # period_usage only comes with 0014.
            missing = [m for m in key_violations(conn) if not m.startswith("period_usage ")]
        # What the check finds at 0012 is what 0013 is for (docs/scaling.md).
        assert missing == [
            "invoice_lines has no column org_id",
            "credits: primary key credits_pkey (id) lacks org_id",
            "invoice_lines: primary key invoice_lines_pkey (invoice_id, position) lacks org_id",
            "invoices: primary key invoices_pkey (id) lacks org_id",
            "meter_outbox: primary key meter_outbox_pkey (id) lacks org_id",
            "meter_outbox: unique index uq_meter_outbox_identifier (identifier) lacks org_id",
            "payment_attempts: unique index payment_attempts_event_id_key (event_id) lacks "
            "org_id",
            "payment_attempts: primary key payment_attempts_pkey (id) lacks org_id",
            "refunds: primary key refunds_pkey (refund_key) lacks org_id",
            "subscriptions: primary key subscriptions_pkey (id) lacks org_id",
            "invoice_lines: foreign key invoice_lines_credit_id_fkey (credit_id) -> credits (id)"
            " does not match org_id to org_id",
            "invoice_lines: foreign key invoice_lines_invoice_id_fkey (invoice_id) -> invoices "
            "(id) does not match org_id to org_id",
        ]
        migrate_to(pg_at_0012, "0013")
        with engine.connect() as conn:
            assert [m for m in key_violations(conn) if not m.startswith("period_usage ")] == []
    finally:
        engine.dispose()
