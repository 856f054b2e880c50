"""The tables the engine's code queries are exactly the tables its migrations create.

Every table is declared once, in its concept's `tables` module; the migrations are written
separately (as Alembic wants), and alembic's own `compare_metadata` (through
`tests/support/schema_drift.py`) proves the two agree, on SQLite and on PostgreSQL, column by
column, with indexes and constraints.
"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, pool

from billing_core.sql import normalise_url
from billing_engine.db.metadata import SQLITE_ROWID_KEYED, engine_metadata
from tests.support.schema_drift import schema_drift

ENGINE_TABLES = {
    "orgs", "usage_hours", "daily_usage", "instances", "instance_throttle",
    "daily_counter_resets", "stripe_events", "subscriptions", "payment_attempts", "refunds",
    "meter_outbox", "reconciliation_runs", "reconciliation_mismatches", "invoices",
    "invoice_lines", "credits",
    "closed_periods", "audit_log", "api_keys", "housekeeping_runs", "stripe_invoices",
    "heartbeat_refusals", "period_usage",
}


def engine_drift(url: str) -> list[object]:
    """What alembic would change to make the database match the engine's table modules (the
    alerts process' tables share the database; its own test checks them)."""
    metadata = engine_metadata()
    return schema_drift(metadata, url, include_table=lambda name: name in metadata.tables)


def test_the_metadata_declares_every_engine_table():
    assert set(engine_metadata().tables) == ENGINE_TABLES


# SQLite cannot reflect the case-folded search indexes on orgs; PostgreSQL compares them.
@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based")
def test_migrations_and_table_modules_agree_on_sqlite(sqlite_database):
    assert engine_drift(sqlite_database.url) == []


def test_migrations_and_table_modules_agree_on_postgres(pg_url):
    assert engine_drift(pg_url) == []


# alembic's comparison leaves primary keys out: these compare them.


def primary_keys(url: str) -> dict[str, list[str]]:
    engine = create_engine(normalise_url(url), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            inspector = inspect(conn)
            return {name: inspector.get_pk_constraint(name)["constrained_columns"]
                    for name in sorted(ENGINE_TABLES)}
    finally:
        engine.dispose()


def declared_primary_keys() -> dict[str, list[str]]:
    return {name: [c.name for c in table.primary_key.columns]
            for name, table in sorted(engine_metadata().tables.items())}


def test_primary_keys_are_the_declared_ones_on_postgres(pg_url):
    assert primary_keys(pg_url) == declared_primary_keys()


def test_sqlite_keys_its_own_rowid_tables_by_id_alone_and_the_rest_as_declared(
        sqlite_database):
    expected = declared_primary_keys()
    for name in SQLITE_ROWID_KEYED:
        assert expected[name] == ["org_id", "id"]
        expected[name] = ["id"]
    assert primary_keys(sqlite_database.url) == expected
