"""The engine and the alerts process through a real PgBouncer (Debian's package) in transaction
pooling mode, as the operations guide recommends for many connections: migrations, ingest and
bills, housekeeping claims, and a budget email, with the same statements run many times over
four server connections (where prepared statements would break), and the alerts leader lock on
a session of its own."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, pool, text

from alerts.settings import Settings as AlertsSettings
from billing_core.settings import SettingsError
from devstack.processes import AlertsProcess, EngineProcess
from devstack.proxies import PgBouncer
from devstack.receivers import SmtpServer
from devstack.servers import create_scratch_database, drop_database, wait_for
from tests.alerts.core import shipped_rule, write_rule_file
from tests.support.builders import engine_org_key

ADMIN = "test-admin-key-0123456789"


@pytest.fixture
def bouncer(pg_server_url: str) -> Iterator[tuple[PgBouncer, str]]:
    """PgBouncer with four server connections in front of a fresh database; yields it and the
    database's direct URL."""
    direct = create_scratch_database(pg_server_url, prefix="billing_bouncer")
    proxy = PgBouncer(server_url=pg_server_url, pool_size=4)
    try:
        proxy.start()
        yield proxy, direct
    finally:
        proxy.stop()
        drop_database(direct)


def this_month_minutes(count: int) -> list[datetime]:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    minutes = [now - timedelta(minutes=k) for k in range(1, count + 1)]
    if minutes[-1] < now.replace(day=1, hour=0, minute=0):
        pytest.fail("run this test later than the first hours of a month")
    return minutes


@pytest.mark.processes
def test_engine_and_alerts_work_through_pgbouncer_in_transaction_mode(bouncer, tmp_path: Path):
    proxy, direct = bouncer
    database = direct.rsplit("/", 1)[1]
    through = proxy.database_url(database)
    smtp = SmtpServer().start()
    # The engine migrates through PgBouncer at start, with two workers of its own pool each.
    engine = EngineProcess(through, admin_key=ADMIN, workers=2, extra_env={
        "HOUSEKEEPING_INTERVAL_SECONDS": "0.25", "USAGE_ARCHIVE_DIR": str(tmp_path / "archive")})
    alerts = AlertsProcess(env={
        "DATABASE_URL": through, "LEADER_DATABASE_URL": direct,
        "PROMETHEUS_URL": "http://127.0.0.1:9",
        "RULE_FILES": str(write_rule_file(tmp_path / "rules.yml", [shipped_rule("Watchdog")])),
        "BUDGET_INTERVAL_SECONDS": "0.5", "OUTBOX_INTERVAL_SECONDS": "0.2",
        "SMTP_HOST": smtp.host, "SMTP_PORT": str(smtp.port)})
    try:
        engine.start(timeout=90)
        org = f"org_{uuid.uuid4().hex[:8]}"
        billing = f"billing@{org}.example"
        created = httpx.put(f"{engine.url}/admin/orgs/{org}", headers={"X-Admin-Key": ADMIN},
                            json={"name": "Bouncer Co", "email": billing, "plan": "free"})
        assert created.status_code == 201, created.text
        key = engine_org_key(engine.url, ADMIN, org)
        minutes = this_month_minutes(330)  # 330 of the free plan's 600: 55 %
        # Thirty-three batches: every statement of the ingest path runs many times on each of
        # the four server connections.
        for n in range(0, 330, 10):
            batch = [{"instance_id": f"{org}-vm", "org_id": org, "ts": ts.isoformat(),
                      "state": "running"} for ts in minutes[n:n + 10]]
            answer = httpx.post(f"{engine.url}/v1/heartbeats", json={"heartbeats": batch},
                                headers=key, timeout=30)
            assert answer.status_code == 200, answer.text
            assert answer.json()["accepted"] == 10
        card = httpx.get(f"{engine.url}/v1/billing", params={"org_id": org}, headers=key,
                         timeout=30).json()
        assert card["usage"]["used_minutes"] == 330

        alerts.start(timeout=90)
        assert alerts.metric("alert_leader") == 1.0
        [mail] = wait_for(lambda: [m for m in smtp.messages if m.rcpt_tos == (billing,)],
                          timeout=30, what="the 50 % budget email")
        assert "50" in mail.subject
        # Housekeeping claims went through PgBouncer too.
        wait_for(lambda: engine_metric(engine, "housekeeping_job_runs_total",
                                       {"job": "close_period", "outcome": "ok"}) >= 2,
                 timeout=30, what="housekeeping jobs through PgBouncer")
    finally:
        alerts.stop()
        engine.stop()
        smtp.stop()
    checked = create_engine(direct, poolclass=pool.NullPool)
    with checked.connect() as conn:
        failed = conn.execute(text(
            "SELECT count(*) FROM housekeeping_runs WHERE outcome = 'failed'")).scalar_one()
    checked.dispose()
    assert failed == 0
    assert "prepared statement" not in engine.log() + alerts.log()


def engine_metric(engine: EngineProcess, name: str, labels: dict[str, str]) -> float:
    from prometheus_client.parser import text_string_to_metric_families

    body = httpx.get(f"{engine.url}/metrics", timeout=10).text
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_the_alerts_process_refuses_a_leader_lock_through_pgbouncer():
    through = "postgresql://billing@pgbouncer:6432/billing?pgbouncer=true"
    with pytest.raises(SettingsError, match="LEADER_DATABASE_URL"):
        AlertsSettings.from_env({"DATABASE_URL": through})
    settings = AlertsSettings.from_env({
        "DATABASE_URL": through, "LEADER_DATABASE_URL": "postgresql://billing@db:5432/billing"})
    assert settings.leader_lock_url == "postgresql://billing@db:5432/billing"
