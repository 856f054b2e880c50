"""Every metric the alerts process exports (names agreed in docs/metrics.md), on an injectable
registry. Labels are bounded: a channel and a failure reason, never an org or an alert."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.metrics import disable_created_metrics
from prometheus_client.process_collector import ProcessCollector

from alerts import __version__
from billing_core.resources import ResourceCollector

CHANNELS = ("email", "slack", "webhook", "pagerduty")
FAILURE_REASONS = ("timeout", "rate_limited", "server_error", "rejected", "connection")
DURATION_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Queued to delivered: a page is due within seconds; bulk mail may wait for hours in a flood.
LATENCY_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0)
disable_created_metrics()


def failure_reason(reason: str) -> str:
    """A channel's reason as one of the five agreed label values (an unknown one is treated
    like a connection failure: retried, and counted)."""
    return reason if reason in FAILURE_REASONS else "connection"


class AlertsMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        # Memory and CPU limits; the volumes of WATCH_VOLUMES and the embedded database.
        self.resources = ResourceCollector(registry=r)
        Info("alerts_build", "Alerts process build.", registry=r).info({"version": __version__})
        self.evaluations = Counter(
            "alert_evaluations_total", "Rule evaluation rounds run.", registry=r)
        self.evaluation_duration = Histogram(
            "alert_evaluation_duration_seconds", "Time of one rule evaluation round.",
            buckets=DURATION_BUCKETS, registry=r)
        self.rule_errors = Counter(
            "alert_rule_errors_total",
            "Rule evaluations that failed (Prometheus unreachable, bad query).", registry=r)
        self.prometheus_up = Gauge(
            "alert_prometheus_up", "1 when the last query to Prometheus succeeded, else 0.",
            registry=r)
        self.budget_duration = Histogram(
            "alert_budget_evaluation_duration_seconds",
            "Time of one budget evaluation round over every org.",
            buckets=DURATION_BUCKETS, registry=r)
        self.sent = Counter(
            "alert_notifications_sent_total", "Notifications delivered, by channel.",
            ["channel"], registry=r)
        self.failed = Counter(
            "alert_notifications_failed_total",
            "Delivery attempts that failed, by channel and reason.",
            ["channel", "reason"], registry=r)
        for channel in CHANNELS:
            self.sent.labels(channel)
            for reason in FAILURE_REASONS:
                self.failed.labels(channel, reason)
        self.outbox_depth = Gauge(
            "alert_outbox_depth", "Notifications waiting to be sent.", registry=r)
        self.outbox_oldest_age = Gauge(
            "alert_outbox_oldest_age_seconds", "Age of the oldest waiting notification.",
            registry=r)
        self.delivery_latency = Histogram(
            "alert_delivery_latency_seconds",
            "From queued to delivered, by lane (pages: P0/P1, escalations, incidents; bulk).",
            ["lane"], buckets=LATENCY_BUCKETS, registry=r)
        for lane in ("pages", "bulk"):
            self.delivery_latency.labels(lane)
        self.db_pool_in_use = Gauge(
            "db_pool_connections_in_use", "Database connections checked out of the pool.",
            registry=r)
        self.db_pool_max = Gauge(
            "db_pool_connections_max",
            "Connections the database pool may hold at once (its size plus overflow).",
            registry=r)
        self.heartbeat_pings = Counter(
            "alert_heartbeat_pings_total",
            "Dead man's switch pings to HEARTBEAT_URL: sent, failed, or skipped because the "
            "evaluation pipeline is not healthy.", ["outcome"], registry=r)
        for outcome in ("sent", "failed", "skipped"):
            self.heartbeat_pings.labels(outcome)
        self.heartbeat_last_sent = Gauge(
            "alert_heartbeat_last_sent_timestamp_seconds",
            "When the external heartbeat service last took a ping (0 before the first).",
            registry=r)
        self.leader = Gauge(
            "alert_leader", "1 on the replica holding the advisory lock, else 0.", registry=r)
        # The engine's names, without an org or key id: why a credential or a request was refused.
        self.auth_failures = Counter(
            "alert_auth_failures_total",
            "Requests refused 401: missing, malformed, unknown, revoked or expired credential.",
            ["reason"], registry=r)
        self.access_denied = Counter(
            "alert_access_denied_total",
            "Requests refused 403: role too low, org key, route without a policy.",
            ["reason"], registry=r)

    def watch_pool(self, in_use: Callable[[], float],
                   capacity: Callable[[], float] = lambda: math.nan) -> None:
        self.db_pool_in_use.set_function(in_use)
        self.db_pool_max.set_function(capacity)

    def watch_volume(self, name: str, path: Path) -> None:
        self.resources.watch(name, path)
