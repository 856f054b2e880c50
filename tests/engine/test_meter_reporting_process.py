"""The engine as a real process reporting usage to a Stripe-compatible server on its schedule."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import httpx
import psycopg
import pytest

from devstack.processes import EngineProcess
from devstack.servers import create_scratch_database, drop_database, wait_for
from tests.support.builders import engine_org_key
from tests.support.fake_stripe import FakeStripe

pytestmark = pytest.mark.processes

ADMIN = "test-admin-key-0123456789"


def link(url: str, org: str, customer: str) -> None:
    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://")) as conn:
        conn.execute("UPDATE orgs SET stripe_customer_id = %s WHERE id = %s", (customer, org))


def test_the_scheduled_flush_reports_a_closed_hour_and_the_log_names_the_provider(
    pg_server_url,
):
    url = create_scratch_database(pg_server_url)
    with FakeStripe() as fake:
        engine = EngineProcess(url, admin_key=ADMIN, extra_env={
            "STRIPE_SECRET_KEY": fake.api_key,
            "STRIPE_API_BASE": fake.url,
            "METER_FLUSH_INTERVAL_SECONDS": "1",
            "METER_CLOSE_DELAY_SECONDS": "0",
        }).start()
        try:
            base = engine.url
            org = f"org_{uuid.uuid4().hex[:8]}"
            created = httpx.put(f"{base}/admin/orgs/{org}", headers={"X-Admin-Key": ADMIN},
                                json={"name": org, "email": f"{org}@x.example",
                                      "plan": "team"})
            assert created.status_code == 201, created.text
            link(url, org, "cus_live")
            # With no close delay the previous UTC hour is closed, and it still takes
            # heartbeats (even at 00:xx on the 1st, within the period's close grace).
            last_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(
                hours=1)
            beats = [{"instance_id": f"{org}-1", "org_id": org,
                      "ts": (last_hour + timedelta(minutes=m)).isoformat(), "state": "running"}
                     for m in range(50)]
            posted = httpx.post(f"{base}/v1/heartbeats", json={"heartbeats": beats},
                                headers=engine_org_key(base, ADMIN, org, ("usage:write",)))
            assert posted.json()["accepted"] == 50, posted.text

            wait_for(lambda: fake.totals_by_customer() == {"cus_live": 50}, timeout=20,
                     what="the scheduled flush to report the hour")
            assert httpx.get(f"{base}/ready").json()["payment_provider"] == "stripe"
            metrics = httpx.get(f"{base}/metrics").text
            assert "meter_events_sent_total 1.0" in metrics
        finally:
            engine.stop()
            drop_database(url)
    log = engine.log_path.read_text()
    assert "payment provider: stripe" in log
    assert fake.api_key not in log


def test_without_a_key_the_engine_says_at_start_that_the_provider_is_simulated(pg_server_url):
    url = create_scratch_database(pg_server_url)
    engine = EngineProcess(url, admin_key=ADMIN, extra_env={"STRIPE_SECRET_KEY": ""}).start()
    try:
        assert httpx.get(f"{engine.url}/ready").json()["payment_provider"] == "simulated"
    finally:
        engine.stop()
        drop_database(url)
    assert "payment provider: simulated" in engine.log_path.read_text()
