"""Redis that never takes a request down with it.

Redis only ever holds what the database can rebuild (a cache, a duplicate fast path). Every
command goes through `FailSoftRedis.call`: a failure is logged once, answered as `None`, and for
`retry_interval` seconds afterwards Redis is not even asked, so a dead Redis costs a request at
most one short socket timeout. `on_up` runs before the first command after Redis was unreachable
(or unknown), so a cache can drop entries whose invalidations may have been lost meanwhile.

`REDIS_URL` may name one node of a Redis Cluster: at first contact the node is asked whether
cluster mode is on (`INFO cluster`), and if it is, commands go through redis-py's cluster client,
which learns the slot map from that node and sends each key to the node that owns it. Every key
we use is a single key per command (`entitlements:<org>`, `webhook:<event>`), so nothing needs a
hash tag; dropping every cached entitlement scans each primary.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

log = logging.getLogger("billing_core.redis")
SOCKET_TIMEOUT_SECONDS = 0.25
_CLIENT_OPTIONS: dict[str, Any] = {
    "socket_timeout": SOCKET_TIMEOUT_SECONDS,
    "socket_connect_timeout": SOCKET_TIMEOUT_SECONDS,
    "retry_on_timeout": False,
    "health_check_interval": 0,
}


class FailSoftRedis:
    def __init__(
        self,
        url: str | None,
        *,
        name: str,
        retry_interval: float = 2.0,
        on_up: Callable[[Any], None] | None = None,
        on_state: Callable[[bool], None] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.retry_interval = retry_interval
        self._on_up = on_up
        self._on_state = on_state
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._up = False  # unknown counts as down: the first contact runs on_up
        self._url = url
        self._cluster_checked = False
        self._client: Any = None  # redis.Redis, or RedisCluster once a cluster is found
        if url:
            self._client = redis.Redis.from_url(url, **_CLIENT_OPTIONS)
        if on_state is not None:
            on_state(False)

    @property
    def configured(self) -> bool:
        return self._client is not None

    @property
    def cluster(self) -> bool:
        return isinstance(self._client, RedisCluster)

    def call(self, op: Callable[[Any], Any]) -> Any:
        """The command's answer, or None when Redis is off, backing off or failed."""
        if self._client is None or self._monotonic() < self._down_until:
            return None
        try:
            if not self._cluster_checked:
                self._check_cluster()
            client = self._client
            if not self._up:
                self._mark_up(client)
            return op(client)
        except (redis.RedisError, OSError) as exc:
            self._mark_down(exc)
            return None

    def ping(self) -> bool:
        """Ask Redis now, ignoring the back-off (housekeeping calls this)."""
        with self._lock:
            self._down_until = 0.0
        return self.call(lambda c: c.ping()) is not None

    def _check_cluster(self) -> None:
        """Switch to the cluster client if the node at REDIS_URL is part of a cluster."""
        info = self._client.info("cluster")
        if info.get("cluster_enabled") in (1, "1") and self._url:
            plain = self._client
            # One retry after a MOVED or a dropped node, no back-off: fail soft, fast.
            self._client = RedisCluster.from_url(
                self._url, retry=Retry(NoBackoff(), 1), **_CLIENT_OPTIONS)
            plain.close()
            log.info("redis cluster found", extra={"redis_use": self.name})
        self._cluster_checked = True

    def _mark_up(self, client: Any) -> None:
        if self._on_up is not None:
            self._on_up(client)
        with self._lock:
            self._up = True
        if self._on_state is not None:
            self._on_state(True)
        log.info("redis up", extra={"redis_use": self.name})

    def _mark_down(self, exc: BaseException) -> None:
        with self._lock:
            was_up = self._up
            self._up = False
            self._down_until = self._monotonic() + self.retry_interval
        if self._on_state is not None:
            self._on_state(False)
        if was_up:
            log.warning("redis down", extra={"redis_use": self.name, "reason": str(exc)[:200]})

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
