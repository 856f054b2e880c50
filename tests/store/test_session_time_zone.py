"""The engine's PostgreSQL sessions run in UTC whatever the database's default time zone, so a
UTC day is the same day on every server, and instants come back in `datetime.UTC` itself."""

from __future__ import annotations

from datetime import UTC, date, datetime

import psycopg
import pytest
from sqlalchemy import text

from billing_core.sql import create_sql_engine
from devstack.servers import create_scratch_database, drop_database

FAR_EAST = "Pacific/Kiritimati"  # UTC+14: 23:30 UTC is already the next day there


@pytest.fixture
def far_east_url(pg_server_url: str):
    url = create_scratch_database(pg_server_url, prefix="billing_tz")
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(pg_server_url.replace("postgresql+psycopg://", "postgresql://"),
                         autocommit=True) as conn:
        conn.execute(f"ALTER DATABASE \"{name}\" SET timezone TO '{FAR_EAST}'")
    yield url
    drop_database(url)


def test_a_database_whose_default_zone_is_not_utc_is_read_in_utc(far_east_url: str):
    with psycopg.connect(far_east_url.replace("postgresql+psycopg://", "postgresql://")) as raw:
        assert raw.execute("SHOW TimeZone").fetchone() == (FAR_EAST,)  # the default we set

    engine = create_sql_engine(far_east_url, pool_size=1, application_name="tz-test")
    try:
        late = datetime(2026, 12, 6, 23, 30, tzinfo=UTC)
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
            conn.rollback()  # a rolled-back transaction does not take the session's zone back
            zone = conn.execute(text("SHOW TimeZone")).scalar_one()
            back, day = conn.execute(
                text("SELECT CAST(:t AS timestamptz), CAST(CAST(:t AS timestamptz) AS date)"),
                {"t": late},
            ).one()
    finally:
        engine.dispose()
    assert zone == "UTC"
    assert back == late and back.tzinfo is UTC
    assert day == date(2026, 12, 6)
