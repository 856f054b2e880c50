"""The engine as a real process against real PostgreSQL: concurrency, crashes, outages."""

from __future__ import annotations

import signal
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from devstack.processes import EngineProcess
from devstack.servers import (
    PostgresServer,
    create_scratch_database,
    start_throwaway_postgres,
    wait_for,
)
from tests.support.builders import engine_org_key

pytestmark = pytest.mark.processes

ADMIN = "test-admin-key-0123456789"


@pytest.fixture
def engine(pg_server_url):
    url = create_scratch_database(pg_server_url)
    process = EngineProcess(url, admin_key=ADMIN, workers=2).start()
    yield process
    process.stop()


def make_org(base: str) -> str:
    org = f"org_{uuid.uuid4().hex[:8]}"
    r = httpx.put(f"{base}/admin/orgs/{org}", headers={"X-Admin-Key": ADMIN},
                  json={"name": org, "email": f"{org}@x.example", "plan": "team"})
    assert r.status_code == 201, r.text
    FLEET_KEYS[org] = engine_org_key(base, ADMIN, org)
    return org


FLEET_KEYS: dict[str, dict[str, str]] = {}  # each org's Authorization, made with the org
STAFF = {"X-Admin-Key": ADMIN}


def minute_heartbeats(org: str, instances: range, minutes: range, now: datetime):
    return [
        {"instance_id": f"{org}-{i}", "org_id": org,
         "ts": (now - timedelta(minutes=m, seconds=s)).isoformat(), "state": "running"}
        for i in instances for m in minutes for s in (0, 20)
    ]


def test_concurrent_overlapping_batches_give_exact_totals(engine):
    org = make_org(engine.url)
    now = (datetime.now(UTC) - timedelta(minutes=1)).replace(second=40)
    # 8 clients each send 40 instances x 30 minutes, overlapping the others by two thirds.
    batches = []
    for client_no in range(8):
        hbs = minute_heartbeats(org, range(client_no * 5, client_no * 5 + 15), range(30), now)
        batches.extend(hbs[i:i + 300] for i in range(0, len(hbs), 300))
    expected = len({(b["instance_id"], b["ts"][:16]) for batch in batches for b in batch})

    def post(batch):
        r = httpx.post(f"{engine.url}/v1/heartbeats", json={"heartbeats": batch}, timeout=60,
                       headers=FLEET_KEYS[org])
        assert r.status_code == 200, r.text
        return r.json()

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(post, batches * 2))  # every batch delivered twice
    assert sum(r["accepted"] for r in results) == expected
    assert sum(r["accepted"] + r["duplicate"] for r in results) == sum(len(b) for b in batches) * 2
    billing = httpx.get(f"{engine.url}/v1/billing", params={"org_id": org}, headers=STAFF).json()
    assert billing["usage"]["used_minutes"] == expected == 50 * 30


def test_an_acknowledged_batch_survives_the_engine_being_killed(engine):
    org = make_org(engine.url)
    now = (datetime.now(UTC) - timedelta(minutes=1)).replace(second=40)
    batch = minute_heartbeats(org, range(3), range(25), now)
    r = httpx.post(f"{engine.url}/v1/heartbeats", json={"heartbeats": batch}, timeout=30,
                   headers=FLEET_KEYS[org])
    assert r.status_code == 200 and r.json()["accepted"] == 75
    engine.kill(signal.SIGKILL)  # no graceful shutdown, no flush
    engine.start()
    billing = httpx.get(f"{engine.url}/v1/billing", params={"org_id": org}, headers=STAFF).json()
    assert billing["usage"]["used_minutes"] == 75


@pytest.fixture
def own_postgres():
    """A PostgreSQL of this test's own, because the test stops it."""
    server: PostgresServer = start_throwaway_postgres()
    yield server
    server.destroy()


def test_database_outage_gives_503_then_recovers_by_itself(own_postgres):
    url = create_scratch_database(own_postgres.url)
    engine = EngineProcess(url, admin_key=ADMIN).start()
    try:
        org = make_org(engine.url)
        now = (datetime.now(UTC) - timedelta(minutes=1)).replace(second=40)
        own_postgres.stop("fast")
        ready = wait_for(
            lambda: (r := httpx.get(f"{engine.url}/ready", timeout=10)).status_code == 503 and r,
            timeout=30, what="/ready to report the outage",
        )
        assert "database" in ready.json()["reason"]
        during = httpx.post(f"{engine.url}/v1/heartbeats", timeout=30,
                            headers=FLEET_KEYS[org], json={
            "heartbeats": minute_heartbeats(org, range(1), range(5), now)})
        assert during.status_code == 503  # never a 2xx for data we could not store
        assert during.json()["error"] == "database_unavailable"
        assert during.headers["retry-after"] == "5"
        own_postgres.start()
        wait_for(lambda: httpx.get(f"{engine.url}/ready", timeout=10).status_code == 200,
                 timeout=60, what="/ready to recover")
        after = httpx.post(f"{engine.url}/v1/heartbeats", timeout=30,
                           headers=FLEET_KEYS[org], json={
            "heartbeats": minute_heartbeats(org, range(1), range(5), now)})
        assert after.status_code == 200 and after.json()["accepted"] == 5
        metrics = httpx.get(f"{engine.url}/metrics").text
        assert 'http_requests_total{endpoint="/v1/heartbeats",method="POST",status="503"} 1.0' \
            in metrics
    finally:
        engine.stop()
