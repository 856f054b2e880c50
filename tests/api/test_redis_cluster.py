"""REDIS_URL naming one node of a Redis Cluster (three primaries started here with
`redis-server --cluster-enabled yes`): the entitlements cache and the webhook duplicate fast
path work across the nodes, and a fresh engine drops entries cached on every node."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

import pytest
import redis
from fastapi.testclient import TestClient
from redis.cluster import RedisCluster as ClusterClient

from billing_engine.api import create_app
from billing_engine.entitlements.cache import EntitlementsCache, entitlements_key
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.stripe.webhooks.dedup import dedup_key
from devstack.servers import RedisCluster
from tests.support.builders import new_org
from tests.support.stripe_events import WEBHOOK_SECRET, deliver, event

pytestmark = pytest.mark.xdist_group("test_redis_cluster")


@pytest.fixture(scope="module")
def cluster() -> Iterator[RedisCluster]:
    started = RedisCluster(nodes=3).start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def clustered(pg_database, settings, clock, cluster) -> Iterator[TestClient]:
    configured = replace(settings, redis_url=cluster.url, cache_retry_seconds=0,
                         stripe_webhook_secret=WEBHOOK_SECRET)
    app = create_app(configured, database=pg_database, metrics=EngineMetrics(), clock=clock,
                     housekeeping=False)
    with TestClient(app) as test_client:
        yield test_client


def keys_per_node(cluster: RedisCluster, pattern: str) -> list[int]:
    counts = []
    for port in cluster.ports:
        node = redis.Redis(port=port)
        counts.append(len(list(node.scan_iter(match=pattern))))
        node.close()
    return counts


def test_entitlements_are_cached_across_the_cluster_and_invalidated_on_a_plan_change(
        clustered, admin, cluster):
    orgs = [new_org(clustered, admin, plan="free") for _ in range(24)]
    for org in orgs:
        assert clustered.get(f"/v1/entitlements/{org}", headers=admin).json()["source"] == (
            "database")
    assert [clustered.get(f"/v1/entitlements/{org}", headers=admin).json()["source"]
            for org in orgs] == ["cache"] * 24
    spread = keys_per_node(cluster, "entitlements:*")
    assert sum(spread) >= 24 and min(spread) > 0  # every node holds some of them
    services = clustered.app.state.services  # type: ignore[attr-defined]
    assert services.cache.redis.cluster
    new_org(clustered, admin, plan="team", org_id=orgs[5])
    changed = clustered.get(f"/v1/entitlements/{orgs[5]}", headers=admin).json()
    assert (changed["plan"], changed["source"]) == ("team", "database")
    assert services.metrics.registry.get_sample_value("entitlements_cache_up") == 1


def test_a_redelivered_webhook_is_answered_from_the_cluster(clustered, admin, cluster):
    delivered = event("customer.tax_id.created", {"id": "txi_cl", "object": "tax_id",
                                                  "customer": "cus_cl"})
    first = deliver(clustered, delivered)
    assert first.status_code == 200, first.text
    assert deliver(clustered, delivered).json()["outcome"] == "duplicate"  # from the inbox
    again = deliver(clustered, delivered)
    assert again.status_code == 200
    assert again.json()["outcome"] == "duplicate"
    assert "fast path" in again.json()["effect"]
    client = ClusterClient.from_url(cluster.url)
    try:
        assert client.exists(dedup_key(delivered["id"])) == 1
    finally:
        client.close()


def test_a_fresh_engine_drops_entitlements_cached_on_every_node(cluster):
    warm = EntitlementsCache(cluster.url, metrics=EngineMetrics())
    for n in range(40):
        warm.put(f"org_{n:03d}", {"plan": "free"})
    assert min(keys_per_node(cluster, "entitlements:org_*")) > 0
    # A replica starting (or Redis coming back) cannot know which invalidations it missed.
    fresh = EntitlementsCache(cluster.url, metrics=EngineMetrics())
    assert fresh.get("org_000") is None
    assert keys_per_node(cluster, "entitlements:org_*") == [0, 0, 0]
    assert entitlements_key("org_000") == "entitlements:org_000"
    warm.close()
    fresh.close()
