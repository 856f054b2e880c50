"""Upgrading a database that holds one row per instance-minute (migration 0007): every org's
bill, daily usage, raw minutes per day, per hour and per instance are the same afterwards, and
rollups rebuilt from the converted instance-hours equal the ones written by the old engine."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, pool, text

from billing_core.periods import day_of_minute, minute_of, period_containing
from billing_engine.db.migrate import head_revision, migrate_to, schema_version
from billing_engine.settings import Settings
from billing_engine.wiring import build_services
from devstack.servers import scratch_database
from tests.support.builders import ADMIN_KEY
from tests.support.clock import FrozenClock

NOW = datetime(2026, 11, 18, 12, 0, 30, tzinfo=UTC)
PLANS = ("free", "base_usage", "team")


@pytest.fixture(params=["sqlite", "postgres"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database at revision 0006: minute rows in `usage_slots`."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'old.db'}"
        migrate_to(url, "0006")
        yield url
        return
    server = request.getfixturevalue("pg_server_url")
    with scratch_database(server, prefix="billing_upgrade",
                          setup=lambda u: migrate_to(u, "0006")) as url:
        yield url


def fill_old_schema(url: str) -> list[tuple[str, int, str]]:
    """Orgs, instances and minute slots over October (closed) and November as the engine
    before 0007 wrote them, with daily rollups counting the slots. Returns the slots."""
    rng = random.Random(7)
    orgs = [f"org_{n}" for n in range(9)]
    start, end = minute_of(datetime(2026, 10, 20, tzinfo=UTC)), minute_of(NOW)
    slots: dict[tuple[str, int], str] = {}
    for n, org in enumerate(orgs):
        for i in range(1 + n % 4):
            instance = f"{org}-vm{i}"
            run_start = rng.randrange(start, end - 3000)
            for _ in range(rng.randrange(1, 4)):  # a few runs, some overlapping, some sparse
                length = rng.choice((1, 7, 59, 61, 600, 2900))
                step = rng.choice((1, 1, 1, 3))
                for minute in range(run_start, min(end, run_start + length), step):
                    slots[(instance, minute)] = org
                run_start = rng.randrange(start, end - 3000)
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"),
                           poolclass=pool.NullPool)
    with engine.begin() as conn:
        for n, org in enumerate(orgs):
            conn.execute(text("INSERT INTO orgs (id, name, billing_email, plan, created_at, "
                              "updated_at) VALUES (:id, :id, :email, :plan, :t, :t)"),
                         {"id": org, "email": f"{org}@x.example", "plan": PLANS[n % 3],
                          "t": datetime(2026, 9, 1, tzinfo=UTC)})
        conn.execute(text("INSERT INTO usage_slots (instance_id, minute, org_id, state) "
                          "VALUES (:i, :m, :o, :s)"),
                     [{"i": i, "m": m, "o": o, "s": rng.choice(("running", "idle"))}
                      for (i, m), o in sorted(slots.items())])
        per_day = Counter((o, day_of_minute(m)) for (_i, m), o in slots.items())
        conn.execute(text("INSERT INTO daily_usage (org_id, day, minutes) VALUES (:o, :d, :n)"),
                     [{"o": o, "d": d, "n": n} for (o, d), n in sorted(per_day.items())])
        seen: dict[str, list[int]] = {}
        for (i, m), _o in slots.items():
            seen.setdefault(i, []).append(m)
        conn.execute(text("INSERT INTO instances (instance_id, org_id, first_seen, last_seen, "
                          "last_state) VALUES (:i, :o, :f, :l, 'running')"),
                     [{"i": i, "o": slots[(i, ms[0])], "f": _at(min(ms)), "l": _at(max(ms))}
                      for i, ms in sorted(seen.items())])
    engine.dispose()
    return [(i, m, o) for (i, m), o in slots.items()]


def _at(minute: int) -> datetime:
    return datetime.fromtimestamp(minute * 60, UTC)


def bills(url: str, orgs: list[str]) -> dict[str, Any]:
    """Each org's billing card (usage, charges, invoice preview) and 60 days of daily usage, as
    the engine shows them: both read the rollups, which the old schema has too."""
    services = build_services(Settings(database_url=url, admin_api_key=ADMIN_KEY,
                                       environment="test"), clock=FrozenClock(NOW))
    try:
        return {org: (services.billing.card(org), services.usage.daily(org, 60))
                for org in orgs}
    finally:
        services.dispose()


def test_upgrading_minute_rows_keeps_every_bill_and_every_day_of_usage(old_database):
    slots = fill_old_schema(old_database)
    orgs = sorted({o for _i, _m, o in slots})
    before = bills(old_database, orgs)
    migrate_to(old_database, "head")
    assert schema_version(old_database) == head_revision()
    assert bills(old_database, orgs) == before

    services = build_services(Settings(database_url=old_database, admin_api_key=ADMIN_KEY,
                                       environment="test"), clock=FrozenClock(NOW))
    try:
        # The instance-hours hold every minute row: per org and day, per instance, per hour.
        expected_days = Counter((o, day_of_minute(m)) for _i, m, o in slots)
        current = period_containing(NOW)
        for org in orgs:
            for period in (current, current.previous()):
                assert services.usage.store.raw_daily_minutes(org, period) == {
                    d: n for (o, d), n in expected_days.items()
                    if o == org and period.first_day <= d < period.end_day}
            for instance in sorted({i for i, _m, o in slots if o == org}):
                assert services.usage.instance(instance).minutes == sum(
                    1 for i, m, _o in slots
                    if i == instance and current.start_minute <= m < current.end_minute)
        # The period totals (0014) are filled from the old rollups: October and November.
        for period in (current, current.previous()):
            assert {o: n for o, _plan, n in services.usage.store.usage_by_org(period)} == {
                o: sum(n for (o2, d), n in expected_days.items()
                       if o2 == o and period.first_day <= d < period.end_day)
                for o in orgs if any(o2 == o and period.first_day <= d < period.end_day
                                     for o2, d in expected_days)}
        # Rollups rebuilt from the converted rows are the rollups the old engine kept.
        for org in orgs:
            rebuilt = services.usage.rebuild(org)
            assert rebuilt.before_minutes == rebuilt.after_minutes
    finally:
        services.dispose()
    assert bills(old_database, orgs) == before


def test_the_upgrade_can_be_undone_to_the_same_minute_rows(old_database):
    slots = fill_old_schema(old_database)
    migrate_to(old_database, "head")
    migrate_to(old_database, "0006")
    engine = create_engine(old_database, poolclass=pool.NullPool)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT instance_id, minute, org_id FROM usage_slots")).all()
    engine.dispose()
    assert sorted((r.instance_id, int(r.minute), r.org_id) for r in rows) == sorted(slots)
