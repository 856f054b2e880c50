"""Entitlements through the API, with and without the Redis cache."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from billing_engine.api import create_app
from billing_engine.operability.metrics import EngineMetrics
from devstack.servers import RedisServer
from tests.support.builders import new_org, post_heartbeats


def test_entitlements_follow_the_plan_and_come_from_the_database_without_redis(
        client, admin, metrics):
    org = new_org(client, admin, plan="free")
    body = client.get(f"/v1/entitlements/{org}", headers=admin).json()
    assert body["plan"] == "free" and body["subscription_status"] == "active"
    assert body["limits"] == {"max_concurrent_instances": 2, "continuous_run_hours": 8,
                              "daily_cap_hours": 24, "idle_pause_minutes": 30}
    assert body["features"] == {"overage_allowed": False}
    assert body["source"] == "database"
    new_org(client, admin, plan="team", org_id=org)
    assert client.get(f"/v1/entitlements/{org}", headers=admin).json()["plan"] == "team"
    assert metrics.registry.get_sample_value("entitlements_cache_up") == 0


def test_unknown_orgs_are_named_in_the_404(client, admin):
    for response in (client.get("/v1/entitlements/org_nobody", headers=admin),
                     client.post("/admin/entitlements/org_nobody/recompute", headers=admin)):
        assert response.status_code == 404
        assert response.json()["errors"][0]["field"] == "org_id"


@pytest.fixture
def redis_server() -> Iterator[RedisServer]:
    """A Redis of this test's own: it is stopped and restarted mid-test."""
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def cached_client(pg_database, settings, clock, redis_server) -> Iterator[TestClient]:
    cache_settings = replace(settings, redis_url=redis_server.url, cache_retry_seconds=0)
    app = create_app(cache_settings, database=pg_database, metrics=EngineMetrics(), clock=clock,
                     housekeeping=False)
    with TestClient(app) as test_client:
        yield test_client


def sample(client: TestClient, name: str) -> float | None:
    return client.app.state.services.metrics.registry.get_sample_value(name)  # type: ignore[attr-defined]


def test_entitlements_are_cached_and_a_plan_change_invalidates_them(cached_client, admin):
    org = new_org(cached_client, admin, plan="free")
    first = cached_client.get(f"/v1/entitlements/{org}", headers=admin).json()
    second = cached_client.get(f"/v1/entitlements/{org}", headers=admin).json()
    assert (first["source"], second["source"]) == ("database", "cache")
    assert sample(cached_client, "entitlements_cache_hits_total") == 1
    assert sample(cached_client, "entitlements_cache_misses_total") == 1
    assert sample(cached_client, "entitlements_cache_up") == 1
    new_org(cached_client, admin, plan="base_usage", org_id=org)
    changed = cached_client.get(f"/v1/entitlements/{org}", headers=admin).json()
    assert (changed["plan"], changed["source"]) == ("base_usage", "database")
    assert changed["limits"]["continuous_run_hours"] is None
    recomputed = cached_client.post(f"/admin/entitlements/{org}/recompute", headers=admin)
    assert recomputed.status_code == 200 and recomputed.json()["recomputed"] is True
    assert cached_client.get(f"/v1/entitlements/{org}", headers=admin).json()["source"] == "cache"


def test_redis_stopped_mid_test_entitlements_still_served_and_the_gauge_says_so(
        cached_client, admin, redis_server, clock):
    org = new_org(cached_client, admin, plan="free")
    cached_client.get(f"/v1/entitlements/{org}", headers=admin)
    assert sample(cached_client, "entitlements_cache_up") == 1

    redis_server.stop()
    down = cached_client.get(f"/v1/entitlements/{org}", headers=admin)
    assert down.status_code == 200
    assert (down.json()["plan"], down.json()["source"]) == ("free", "database")
    assert sample(cached_client, "entitlements_cache_up") == 0
    # Plan changes and heartbeats keep working while Redis is down.
    new_org(cached_client, admin, plan="team", org_id=org)
    assert cached_client.get(f"/v1/entitlements/{org}", headers=admin).json()["plan"] == "team"
    beat = {"instance_id": "i1", "org_id": org, "ts": clock().isoformat(), "state": "running"}
    posted = post_heartbeats(cached_client, admin, [beat])
    assert posted.status_code == 200 and posted.json()["decisions"][0]["action"] == "run"
    metrics_text = cached_client.get("/metrics").text
    assert "entitlements_cache_up 0.0" in metrics_text

    restarted = RedisServer(port=redis_server.port).start()
    try:
        back = cached_client.get(f"/v1/entitlements/{org}", headers=admin).json()
        assert back["plan"] == "team"
        assert sample(cached_client, "entitlements_cache_up") == 1
        assert cached_client.get(f"/v1/entitlements/{org}",
                                 headers=admin).json()["source"] == "cache"
    finally:
        restarted.stop()
