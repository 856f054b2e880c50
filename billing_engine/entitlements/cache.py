"""Redis adapter: the entitlements cache.

The database stays the truth. Redis goes through `billing_core.redis.FailSoftRedis`: a failure
is counted in `entitlements_cache_up` and answered as a miss. Entries written before Redis was
last unreachable may be stale (an invalidation can have been lost), so the first successful
contact after an outage drops every cached entry before the cache is trusted again.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from billing_core.redis import FailSoftRedis
from billing_engine.operability.metrics import EngineMetrics

KEY_PREFIX = "entitlements:"
DEFAULT_TTL_SECONDS = 300


def entitlements_key(org_id: str) -> str:
    return f"{KEY_PREFIX}{org_id}"


def _drop_all_entries(client: redis.Redis) -> None:
    # Entitlement keys are one per org: bounded.
    batch = [key for key in client.scan_iter(match=f"{KEY_PREFIX}*", count=500)]
    if batch:
        client.delete(*batch)


class EntitlementsCache:
    def __init__(
        self,
        url: str | None,
        *,
        metrics: EngineMetrics,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        retry_interval: float = 2.0,
    ) -> None:
        self.metrics = metrics
        self.ttl_seconds = ttl_seconds
        self.redis = FailSoftRedis(
            url,
            name="entitlements",
            retry_interval=retry_interval,
            on_up=_drop_all_entries,
            on_state=lambda up: metrics.entitlements_cache_up.set(1 if up else 0),
        )
        # Without REDIS_URL the cache is off by choice (embedded mode), not down.
        metrics.entitlements_cache_configured.set(1 if self.redis.configured else 0)

    @property
    def configured(self) -> bool:
        return self.redis.configured

    def get(self, org_id: str) -> dict[str, Any] | None:
        raw = self.redis.call(lambda c: c.get(entitlements_key(org_id)))
        if raw is None:
            self.metrics.entitlements_cache_misses.inc()
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            self.metrics.entitlements_cache_misses.inc()
            return None
        self.metrics.entitlements_cache_hits.inc()
        return value if isinstance(value, dict) else None

    def put(self, org_id: str, value: dict[str, Any]) -> None:
        payload = json.dumps(value, separators=(",", ":"))
        self.redis.call(lambda c: c.set(entitlements_key(org_id), payload, ex=self.ttl_seconds))

    def invalidate(self, org_id: str) -> None:
        self.redis.call(lambda c: c.delete(entitlements_key(org_id)))

    def ping(self) -> bool:
        """Check Redis now (ignoring the back-off) and set the gauge; housekeeping calls this."""
        return self.redis.ping()

    def close(self) -> None:
        self.redis.close()
