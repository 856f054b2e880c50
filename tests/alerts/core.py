"""Fixtures and helpers for the alerts core tests (state, store, outbox, API, budget, leader).

Test modules bring the fixtures in with `from tests.alerts.core import *  # noqa: F403`; the
receivers (real SMTP, real Slack stand-in) come from tests/alerts/conftest.py.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import Engine, select

from alerts.observability.metrics import AlertsMetrics
from alerts.store.database import create_alerts_engine
from alerts.store.migrate import migrate as migrate_alerts
from alerts.store.repository import AlertStore
from billing_engine.customers.tables import orgs
from billing_engine.db import migrate as migrate_engine
from billing_engine.usage.tables import daily_usage, period_usage
from devstack.processes import SHIPPED_RULES, AlertsProcess
from devstack.servers import create_scratch_database, drop_database
from tests.support.clock import FrozenClock

__all__ = [
    "ADMIN_KEY",
    "NOV_18",
    "AlertsProcess",
    "add_org",
    "add_usage",
    "alerts_clock",
    "alerts_db_url",
    "alerts_engine",
    "alerts_head",
    "alerts_metrics",
    "alerts_pg_template",
    "alerts_pg_url",
    "alerts_sqlite_template",
    "alerts_sqlite_url",
    "shipped_rule",
    "store",
    "seconds",
    "write_rule_file",
]

ADMIN_KEY = "test-admin-key-0123456789"
ALERTS_VERSIONS = Path(__file__).resolve().parents[2] / "alerts" / "migrations" / "versions"


def alerts_head() -> str:
    """The newest alerts migration's revision (files are named after it: a0003_lanes.py)."""
    return sorted(p.name.split("_", 1)[0] for p in ALERTS_VERSIONS.glob("a0*.py"))[-1]


# -- databases -----------------------------------------------------------------------------------


def _migrated(url: str) -> str:
    migrate_engine(url)
    migrate_alerts(url)
    return url


# Migrating takes most of a second; each test starts from a copy of a database migrated once.


@pytest.fixture(scope="session")
def alerts_sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("alerts-template") / "billing.db"
    _migrated(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def alerts_pg_template(pg_server_url: str) -> Iterator[str]:
    url = _migrated(create_scratch_database(pg_server_url, prefix="alerts_template"))
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def alerts_sqlite_url(tmp_path: Path, alerts_sqlite_template: Path) -> str:
    path = tmp_path / "billing.db"
    shutil.copyfile(alerts_sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def alerts_pg_url(alerts_pg_template: str) -> Iterator[str]:
    import psycopg
    from sqlalchemy.engine import make_url

    template = make_url(alerts_pg_template)
    name = f"alerts_test_{uuid.uuid4().hex[:10]}"
    admin = template.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        # names are generated here, not user input
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template.database}"')
    url = template.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture(params=["sqlite", "postgres"])
def alerts_db_url(request: pytest.FixtureRequest) -> str:
    """Both backends the alerts process ships with, engine and alerts schemas migrated."""
    name = "alerts_sqlite_url" if request.param == "sqlite" else "alerts_pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def alerts_engine(alerts_db_url: str) -> Iterator[Engine]:
    engine = create_alerts_engine(alerts_db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def store(alerts_engine: Engine) -> AlertStore:
    return AlertStore(alerts_engine)


@pytest.fixture
def alerts_metrics() -> AlertsMetrics:
    return AlertsMetrics()


@pytest.fixture
def alerts_clock() -> FrozenClock:
    return FrozenClock(datetime(2026, 11, 18, 12, 0, 0, tzinfo=UTC))


# -- billing data as the engine's ingest leaves it -----------------------------------------------

NOV_18 = datetime(2026, 11, 18, 12, 0, tzinfo=UTC)


def add_org(engine: Engine, org_id: str, *, plan: str = "base_usage",
            email: str | None = None) -> None:
    with engine.begin() as conn:
        conn.execute(orgs.insert().values(
            id=org_id, name=f"Org {org_id}", billing_email=email or f"billing@{org_id}.example",
            plan=plan, created_at=NOV_18, updated_at=NOV_18))


def add_usage(engine: Engine, org_id: str, day: date, minutes: int) -> None:
    """What the engine's ingest does to the daily rollup and the period total."""
    with engine.begin() as conn:
        for table, key, when in ((daily_usage, daily_usage.c.day, day),
                                 (period_usage, period_usage.c.first_day, day.replace(day=1))):
            where = (table.c.org_id == org_id, key == when)
            if conn.execute(select(table.c.minutes).where(*where)).first() is None:
                conn.execute(table.insert().values({"org_id": org_id, key.name: when,
                                                    "minutes": minutes}))
            else:
                conn.execute(table.update().where(*where).values(
                    minutes=table.c.minutes + minutes))


# -- rule files ----------------------------------------------------------------------------------


def shipped_rule(name: str) -> dict[str, Any]:
    """One alerting rule of prometheus/rules/*.yml, as written there."""
    for path in SHIPPED_RULES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            for rule in group["rules"]:
                if rule.get("alert") == name:
                    return dict(rule)
    raise KeyError(name)


def write_rule_file(path: Path, rules: Sequence[Mapping[str, Any]], *, group: str = "test"
                    ) -> Path:
    path.write_text(yaml.safe_dump({"groups": [{"name": group, "rules": list(rules)}]},
                                   sort_keys=False))
    return path


def seconds(value: float) -> timedelta:
    return timedelta(seconds=value)
