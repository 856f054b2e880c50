"""Migration 0009 on a database the old engine filled: one row per invoice event could repeat a
charge id, which the new unique (org, charge) index forbids; the upgrade keeps the charge on each
org's earliest row, and the downgrade puts the old index back."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from billing_engine.db.migrate import migrate_to, schema_version
from devstack.servers import scratch_database

AT = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", "postgres"])
def at_0008(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        migrate_to(url, "0008")
        yield url
        return
    server = request.getfixturevalue("pg_server_url")
    with scratch_database(server, prefix="billing_0009",
                          setup=lambda u: migrate_to(u, "0008")) as url:
        yield url


def test_repeated_charges_keep_their_id_on_the_earliest_row_and_the_index_goes_on(at_0008):
    engine = create_engine(at_0008.replace("postgresql://", "postgresql+psycopg://"))
    rows = [("evt_1", "org_a", "ch_1"), ("evt_2", "org_a", "ch_1"), ("evt_3", "org_b", "ch_1"),
            ("evt_4", "org_a", None), ("evt_5", "org_a", None)]
    with engine.begin() as conn:
        for event_id, org, charge in rows:
            conn.execute(text(
                "INSERT INTO payment_attempts (event_id, org_id, charge_id, amount_cents, "
                "currency, outcome, method, refunded_cents, attempted_at, recorded_at) VALUES "
                "(:e, :o, :c, 100, 'usd', 'succeeded', 'other', 0, :at, :at)"),
                {"e": event_id, "o": org, "c": charge, "at": AT})
    migrate_to(at_0008, "0009")
    assert schema_version(at_0008) == "0009"
    with engine.connect() as conn:
        kept = conn.execute(text(
            "SELECT event_id, charge_id FROM payment_attempts ORDER BY event_id")).all()
    assert [tuple(r) for r in kept] == [("evt_1", "ch_1"), ("evt_2", None), ("evt_3", "ch_1"),
                                        ("evt_4", None), ("evt_5", None)]
    with pytest.raises(Exception, match="(?i)unique"), engine.begin() as conn:
        conn.execute(text("UPDATE payment_attempts SET charge_id = 'ch_1' "
                          "WHERE event_id = 'evt_2'"))
    migrate_to(at_0008, "0008")
    assert schema_version(at_0008) == "0008"
    engine.dispose()
