"""Every metric the engine exports, declared in one place against an injectable registry.

Labels are bounded: never an org, instance or customer id.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
)

from billing_engine import __version__
from billing_engine.domain.metering import RejectReason
from billing_engine.domain.quota import BUDGET_THRESHOLDS
from billing_engine.domain.throttle import PauseReason

# A bucket sits exactly on the 150 ms latency SLO so the SLO ratio is exact, not interpolated.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000)
# The *_created series double the exposition for no use to our rules or dashboards.
disable_created_metrics()


def memory_limit_bytes(cgroup_root: Path = Path("/sys/fs/cgroup")) -> float:
    """The cgroup memory limit, or the machine's memory when the cgroup has none."""
    for candidate in (cgroup_root / "memory.max", cgroup_root / "memory/memory.limit_in_bytes"):
        try:
            raw = candidate.read_text().strip()
        except OSError:
            continue
        if raw.isdigit() and int(raw) < 2**60:
            return float(raw)
        break
    try:
        return float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError):
        return math.nan


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        Info("billing_engine_build", "Engine build.", registry=r).info({"version": __version__})

        self.http_requests = Counter(
            "http_requests_total",
            "HTTP requests served, by route template and status code.",
            ["method", "endpoint", "status"],
            registry=r,
        )
        self.http_duration = Histogram(
            "http_request_duration_seconds",
            "Time to serve an HTTP request.",
            ["method", "endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.admin_auth_failures = Counter(
            "admin_auth_failures_total",
            "Admin or debug requests refused for a missing or wrong admin key.",
            ["reason"],
            registry=r,
        )
        for reason in ("missing", "invalid"):
            self.admin_auth_failures.labels(reason)

        self.heartbeats_ingested = Counter(
            "heartbeats_ingested_total",
            "Heartbeats that opened a new billable instance-minute.",
            registry=r,
        )
        self.heartbeats_duplicate = Counter(
            "heartbeats_duplicate_total",
            "Heartbeats whose instance-minute was already counted.",
            registry=r,
        )
        self.heartbeats_rejected = Counter(
            "heartbeats_rejected_total",
            "Heartbeats refused, by reason.",
            ["reason"],
            registry=r,
        )
        for reject in RejectReason:
            self.heartbeats_rejected.labels(reject.value)
        self.heartbeat_batch_size = Histogram(
            "heartbeat_batch_size",
            "Heartbeats per POST /v1/heartbeats batch.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.rollup_lag = Gauge(
            "usage_rollup_lag_seconds",
            "Seconds since the newest heartbeat folded into the daily usage rollups.",
            registry=r,
        )
        self.rollup_lag.set(math.nan)
        self.orgs_over_threshold = Gauge(
            "billing_orgs_over_threshold",
            "Orgs at or over this share (percent) of their included hours this period.",
            ["threshold"],
            registry=r,
        )
        for threshold in BUDGET_THRESHOLDS:
            self.orgs_over_threshold.labels(str(threshold))
        self.db_pool_in_use = Gauge(
            "db_pool_connections_in_use",
            "Database connections checked out of the pool.",
            registry=r,
        )
        self.ready = Gauge(
            "billing_engine_ready",
            "1 when the last readiness check passed, else 0.",
            registry=r,
        )
        self.memory_limit = Gauge(
            "process_memory_limit_bytes",
            "Memory limit of the engine's cgroup, or the machine's memory when unlimited.",
            registry=r,
        )
        self.memory_limit.set_function(memory_limit_bytes)

        self.entitlements_cache_hits = Counter(
            "entitlements_cache_hits_total",
            "Entitlement lookups answered by the Redis cache.",
            registry=r,
        )
        self.entitlements_cache_misses = Counter(
            "entitlements_cache_misses_total",
            "Entitlement lookups the Redis cache could not answer (absent, or Redis down).",
            registry=r,
        )
        self.entitlements_cache_up = Gauge(
            "entitlements_cache_up",
            "1 when the entitlements cache (Redis) answers, else 0.",
            registry=r,
        )
        self.instances_paused = Counter(
            "instances_paused_total",
            "Pause decisions sent to instances, once per pause episode, by reason.",
            ["reason"],
            registry=r,
        )
        for reason in PauseReason:
            self.instances_paused.labels(reason.value)
        self.throttle_over_limit = Gauge(
            "throttle_instances_over_limit",
            "Instances told to pause that are still sending heartbeats.",
            registry=r,
        )

    def watch_pool(self, in_use: Callable[[], float]) -> None:
        self.db_pool_in_use.set_function(in_use)
