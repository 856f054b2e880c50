"""Redis fast path for duplicate deliveries: `webhook:{event_id}` once the database says handled.

The inbox table stays the truth. Every Redis failure is swallowed and answered as "not seen", so a
dead Redis only sends duplicates on to the database, and for `retry_interval` seconds after a
failure Redis is not even asked.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis

log = logging.getLogger("billing_engine.webhooks")

KEY_PREFIX = "webhook:"
# Stripe retries a delivery for up to three days; a day more covers late manual resends.
TTL_SECONDS = 4 * 24 * 3600
SOCKET_TIMEOUT_SECONDS = 0.25


def dedup_key(event_id: str) -> str:
    return f"{KEY_PREFIX}{event_id}"


class WebhookDedup:
    def __init__(
        self,
        url: str | None,
        *,
        ttl_seconds: int = TTL_SECONDS,
        retry_interval: float = 2.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.retry_interval = retry_interval
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._client: redis.Redis | None = None
        if url:
            self._client = redis.Redis.from_url(
                url,
                socket_timeout=SOCKET_TIMEOUT_SECONDS,
                socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
                retry_on_timeout=False,
                health_check_interval=0,
            )

    def seen(self, event_id: str) -> bool:
        return bool(self._call(lambda c: c.exists(dedup_key(event_id))))

    def remember(self, event_id: str) -> None:
        self._call(lambda c: c.set(dedup_key(event_id), "1", ex=self.ttl_seconds))

    def _call(self, op: Callable[[redis.Redis], Any]) -> Any:
        client = self._client
        if client is None or self._monotonic() < self._down_until:
            return None
        try:
            return op(client)
        except (redis.RedisError, OSError) as exc:
            with self._lock:
                self._down_until = self._monotonic() + self.retry_interval
            log.warning("webhook dedup fast path unavailable", extra={"reason": str(exc)[:200]})
            return None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
