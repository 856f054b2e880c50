"""Ready for Citus, the schema's half (test_citus_ready.py checks the statements): Citus refuses
to distribute a table whose primary key, unique constraints or unique indexes leave out its
distribution column, and a foreign key between distributed tables that does not join them on
it. Read from the PostgreSQL catalogue of a database the migrations built."""

from __future__ import annotations

from sqlalchemy import create_engine, pool

from tests.support.citus import DISTRIBUTED, REFERENCE, key_violations


def test_every_key_of_a_distributed_table_holds_its_distribution_column(pg_url):
    engine = create_engine(pg_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            assert key_violations(conn) == []
    finally:
        engine.dispose()


def test_no_table_is_both_distributed_and_a_reference_table():
    assert set(DISTRIBUTED).isdisjoint(REFERENCE)
