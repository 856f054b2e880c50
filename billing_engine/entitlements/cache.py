"""Redis adapter: the entitlements cache.

The database stays the truth. Every Redis failure is swallowed here, counted in
`entitlements_cache_up`, and answered as a miss, so a dead Redis costs a request at most one short
socket timeout, and for `retry_interval` seconds after a failure not even that.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

from billing_engine.operability.metrics import EngineMetrics

log = logging.getLogger("billing_engine.cache")

KEY_PREFIX = "entitlements:"
DEFAULT_TTL_SECONDS = 300
SOCKET_TIMEOUT_SECONDS = 0.25


def entitlements_key(org_id: str) -> str:
    return f"{KEY_PREFIX}{org_id}"


class EntitlementsCache:
    def __init__(
        self,
        url: str | None,
        *,
        metrics: EngineMetrics,
        ttl_seconds: int = DEFAULT_TTL_SECONDS,
        retry_interval: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.metrics = metrics
        self.ttl_seconds = ttl_seconds
        self.retry_interval = retry_interval
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._down_until = 0.0
        # Start pessimistic: entries written before we last saw Redis may be stale, so the first
        # successful contact clears them (see _mark_up).
        self._up = False
        self._client: redis.Redis | None = None
        if url:
            self._client = redis.Redis.from_url(
                url,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
                retry_on_timeout=False,
                health_check_interval=0,
            )
        metrics.entitlements_cache_up.set(0)

    @property
    def configured(self) -> bool:
        return self._client is not None

    def get(self, org_id: str) -> dict[str, Any] | None:
        raw = self._call(lambda c: c.get(entitlements_key(org_id)))
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
        self._call(lambda c: c.set(entitlements_key(org_id), payload, ex=self.ttl_seconds))

    def invalidate(self, org_id: str) -> None:
        self._call(lambda c: c.delete(entitlements_key(org_id)))

    def ping(self) -> bool:
        """Check Redis now (ignoring the back-off) and set the gauge; housekeeping calls this."""
        with self._lock:
            self._down_until = 0.0
        return self._call(lambda c: c.ping()) is not None

    def _call(self, op: Callable[[redis.Redis], Any]) -> Any:
        client = self._client
        if client is None or self._monotonic() < self._down_until:
            return None
        try:
            if not self._up:
                self._mark_up(client)
            return op(client)
        except (redis.RedisError, OSError) as exc:
            self._mark_down(exc)
            return None

    def _mark_up(self, client: redis.Redis) -> None:
        # An invalidation may have been lost while Redis was unreachable: drop every cached
        # entry before trusting the cache again. Entitlement keys are one per org: bounded.
        batch = [key for key in client.scan_iter(match=f"{KEY_PREFIX}*", count=500)]
        if batch:
            client.delete(*batch)
        with self._lock:
            self._up = True
        self.metrics.entitlements_cache_up.set(1)
        log.info("entitlements cache up")

    def _mark_down(self, exc: BaseException) -> None:
        with self._lock:
            was_up = self._up
            self._up = False
            self._down_until = self._monotonic() + self.retry_interval
        self.metrics.entitlements_cache_up.set(0)
        if was_up:
            log.warning("entitlements cache down", extra={"reason": str(exc)[:200]})

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
