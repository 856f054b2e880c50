"""Redis fast path for duplicate deliveries: `webhook:{event_id}` once the database says handled.

The inbox table stays the truth. Redis goes through `billing_core.redis.FailSoftRedis`, so a
dead Redis only sends duplicates on to the database, and for `retry_interval` seconds after a
failure Redis is not even asked.
"""

from __future__ import annotations

from billing_core.redis import FailSoftRedis

KEY_PREFIX = "webhook:"
# Stripe retries a delivery for up to three days; a day more covers late manual resends.
TTL_SECONDS = 4 * 24 * 3600


def dedup_key(event_id: str) -> str:
    return f"{KEY_PREFIX}{event_id}"


class WebhookDedup:
    def __init__(
        self, url: str | None, *, ttl_seconds: int = TTL_SECONDS, retry_interval: float = 2.0
    ) -> None:
        self.ttl_seconds = ttl_seconds
        self.redis = FailSoftRedis(url, name="webhook_dedup", retry_interval=retry_interval)

    def seen(self, event_id: str) -> bool:
        return bool(self.redis.call(lambda c: c.exists(dedup_key(event_id))))

    def remember(self, event_id: str) -> None:
        self.redis.call(lambda c: c.set(dedup_key(event_id), "1", ex=self.ttl_seconds))

    def close(self) -> None:
        self.redis.close()
