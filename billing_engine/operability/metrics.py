"""Every metric the engine exports, declared in one place against an injectable registry.

Labels are bounded: never an org, instance or customer id.
"""

from __future__ import annotations

import math
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

from billing_core.quota import BUDGET_THRESHOLDS
from billing_core.resources import ResourceCollector
from billing_engine import __version__
from billing_engine.payments.rules import FAILURE_REASONS, PAYMENT_METHODS, PaymentOutcome
from billing_engine.stripe.meters.rules import METER_ERROR_CODES
from billing_engine.throttling.rules import PauseReason
from billing_engine.usage.rules import RejectReason

# A bucket sits exactly on the 150 ms latency SLO so the SLO ratio is exact, not interpolated.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000)
# The *_created series double the exposition for no use to our rules or dashboards.
disable_created_metrics()


class EngineMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        ProcessCollector(registry=r)
        # Memory and CPU limits, and the embedded database's volume once watch_volume names it.
        self.resources = ResourceCollector(registry=r)
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
        self.auth_failures = Counter(
            "auth_failures_total",
            "Failed authentications: refused with 401 (no credential, or one unknown, revoked "
            "or expired), or with 429 while a failed-authentication limit holds (rate_limited).",
            ["reason"],
            registry=r,
        )
        for reason in ("missing", "malformed", "unknown", "revoked", "expired", "rate_limited"):
            self.auth_failures.labels(reason)
        self.access_denied = Counter(
            "access_denied_total",
            "Requests refused with 403: a valid credential without the scope, role or org.",
            ["reason"],
            registry=r,
        )
        for reason in ("scope", "role", "other_org", "staff_not_allowed", "org_key_not_allowed",
                       "no_policy"):
            self.access_denied.labels(reason)

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
        self.usage_storage_bytes = Gauge(
            "usage_storage_bytes",
            "Bytes the raw usage (instance-hours) takes on disk, indexes included.",
            registry=r,
        )
        self.usage_storage_bytes.set(math.nan)
        self.usage_partition_months_ahead = Gauge(
            "usage_partition_months_ahead",
            "Months after the current one whose usage partition exists (PostgreSQL).",
            registry=r,
        )
        self.usage_partition_months_ahead.set(math.nan)
        self.usage_retention_months_waiting = Gauge(
            "usage_retention_months_waiting",
            "Months past raw-usage retention kept because their period is not closed yet.",
            registry=r,
        )
        self.housekeeping_job_runs = Counter(
            "housekeeping_job_runs_total",
            "Periodic jobs this replica ran (it held the job's slot), by job and outcome.",
            ["job", "outcome"],
            registry=r,
        )
        self.housekeeping_job_last_success = Gauge(
            "housekeeping_job_last_success_timestamp_seconds",
            "When each periodic job last finished well, on whichever replica ran it.",
            ["job"],
            registry=r,
        )
        self.usage_months_retired = Counter(
            "usage_months_retired_total",
            "Months of raw usage archived and dropped under the retention setting.",
            registry=r,
        )
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
        self.db_pool_max = Gauge(
            "db_pool_connections_max",
            "Connections the database pool may hold at once (its size plus overflow).",
            registry=r,
        )

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
        self.entitlements_cache_configured = Gauge(
            "entitlements_cache_configured",
            "1 when REDIS_URL names a Redis for the entitlements cache, 0 when it runs without.",
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
        self._stripe_webhook_metrics(r)
        self._usage_meter_metrics(r)
        self._invoice_metrics(r)
        self._stripe_support_metrics(r)

    def _invoice_metrics(self, r: CollectorRegistry) -> None:
        """Invoices written at period close, and the admin audit log (issue 3)."""
        self.invoices_created = Counter(
            "invoices_created_total",
            "Invoices written when a billing period closed.",
            registry=r,
        )
        self.audit_write_failures = Counter(
            "admin_audit_write_failures_total",
            "Admin actions whose audit entry could not be written.",
            registry=r,
        )

    def watch_pool(self, in_use: Callable[[], float],
                   capacity: Callable[[], float] = lambda: math.nan) -> None:
        self.db_pool_in_use.set_function(in_use)
        self.db_pool_max.set_function(capacity)

    def watch_volume(self, name: str, path: Path) -> None:
        self.resources.watch(name, path)

    def _stripe_webhook_metrics(self, r: CollectorRegistry) -> None:
        """Stripe webhooks and the payments they carry (issue 3)."""
        self.webhook_events = Counter(
            "stripe_webhook_events_total",
            "Verified Stripe webhook deliveries, by what became of them.",
            ["outcome"],
            registry=r,
        )
        for outcome in ("handled", "duplicate", "ignored", "failed"):
            self.webhook_events.labels(outcome)
        self.webhook_signature_failures = Counter(
            "stripe_webhook_signature_failures_total",
            "Stripe webhook deliveries refused before storage, by reason.",
            ["reason"],
            registry=r,
        )
        for reason in ("missing", "invalid", "stale", "future"):
            self.webhook_signature_failures.labels(reason)
        self.webhook_other_version = Counter(
            "stripe_webhook_events_other_version",
            "Verified Stripe events sent at another API version than the pinned one, by whether "
            "it is older or newer (unknown: missing or unreadable); still handled when readable.",
            ["relation"],
            registry=r,
        )
        for relation in ("older", "newer", "unknown"):
            self.webhook_other_version.labels(relation)
        self.webhook_events_failing = Gauge(
            "stripe_webhook_events_failing",
            "Stored Stripe events whose handling keeps failing (or waits for its org).",
            registry=r,
        )
        self.webhook_oldest_failing_age = Gauge(
            "stripe_webhook_oldest_failing_age_seconds",
            "Seconds since the oldest failing Stripe event arrived; 0 when none is failing.",
            registry=r,
        )
        self.payments = Counter(
            "payments_total",
            "Payment attempts recorded from Stripe charge, payment intent and invoice events.",
            ["outcome", "method"],
            registry=r,
        )
        for outcome in PaymentOutcome:
            for method in PAYMENT_METHODS:
                self.payments.labels(outcome.value, method)
        self.payment_failures = Counter(
            "payment_failures_total",
            "Failed payment attempts, by decline reason family.",
            ["reason"],
            registry=r,
        )
        for reason in FAILURE_REASONS:
            self.payment_failures.labels(reason)
        self.payment_amount_cents = Counter(
            "payment_amount_cents_total",
            "Money attempted, in cents (minor units), by outcome.",
            ["outcome"],
            registry=r,
        )
        for outcome in PaymentOutcome:
            self.payment_amount_cents.labels(outcome.value)
        self.refunds = Counter("refunds_total", "Refunds recorded.", registry=r)
        self.refund_amount_cents = Counter(
            "refund_amount_cents_total", "Money refunded, in cents (minor units).", registry=r
        )

    def _usage_meter_metrics(self, r: CollectorRegistry) -> None:
        """Usage reporting to Stripe, the circuit breaker, reconciliation (issue 3)."""
        self.meter_queue = Gauge(
            "usage_meter_queue",
            "Usage records waiting in the outbox to be reported to Stripe.",
            registry=r,
        )
        self.meter_oldest_age = Gauge(
            "usage_meter_oldest_age_seconds",
            "Seconds the oldest waiting usage record has been in the outbox; 0 when none waits.",
            registry=r,
        )
        self.meter_failed = Gauge(
            "usage_meter_failed",
            "Usage records Stripe refused for good; kept until an admin requeues them.",
            registry=r,
        )
        self.meter_oldest_unsent_event_age = Gauge(
            "usage_meter_oldest_unsent_event_age_seconds",
            "Age of the usage hour of the oldest record not yet reported to Stripe (Stripe takes "
            "meter events from the past 35 days only); 0 when none waits.",
            registry=r,
        )
        self.meter_rejected = Gauge(
            "usage_meter_rejected",
            "Usage records Stripe accepted and then reported in a meter error report: not "
            "billed until requeued.",
            registry=r,
        )
        self.meter_expired = Gauge(
            "usage_meter_expired",
            "Usage records never sent because their hour left Stripe's 35-day window.",
            registry=r,
        )
        self.meter_records_expired = Counter(
            "meter_records_expired_total",
            "Usage records given up because their hour left Stripe's 35-day window.",
            registry=r,
        )
        self.meter_requests = Counter(
            "meter_requests_total",
            "Requests carrying usage records to Stripe, by API: stream (v2 meter event stream, "
            "up to 100 records each) or v1 (one record each).",
            ["api"],
            registry=r,
        )
        for api in ("stream", "v1"):
            self.meter_requests.labels(api)
        self.meter_error_reports = Counter(
            "meter_error_reports_total",
            "Invalid usage events Stripe reported in v1.billing.meter.error_report_triggered "
            "events, by Stripe's error code (other: a code we do not know).",
            ["code"],
            registry=r,
        )
        for code in METER_ERROR_CODES:
            self.meter_error_reports.labels(code)
        self.meter_adjustments = Counter(
            "meter_event_adjustments_total",
            "Meter events cancelled in Stripe because the hour's usage went down.",
            registry=r,
        )
        self.meter_overreported = Gauge(
            "usage_meter_overreported_seconds",
            "Instance time reported to Stripe beyond what we hold (the minutes times 60), in "
            "hours whose events are too old for Stripe to cancel (over 24 hours): billed "
            "unless credited.",
            registry=r,
        )
        self.meter_events_sent = Counter(
            "meter_events_sent_total",
            "Usage records Stripe accepted.",
            registry=r,
        )
        self.meter_errors = Counter(
            "meter_errors_total",
            "Failed usage record submissions to Stripe, by reason.",
            ["reason"],
            registry=r,
        )
        for reason in ("rate_limited", "server_error", "client_error", "network", "circuit_open"):
            self.meter_errors.labels(reason)
        self.stripe_breaker_state = Gauge(
            "stripe_circuit_breaker_state",
            "Circuit breaker around the Stripe API: 0 closed, 1 open, 2 half-open.",
            registry=r,
        )
        self.reconciliation_mismatches = Gauge(
            "reconciliation_mismatches",
            "Mismatches between our invoices and Stripe's found by the last reconciliation run.",
            registry=r,
        )

    def _stripe_support_metrics(self, r: CollectorRegistry) -> None:
        """Credits in Stripe, resyncs and scheduled reconciliation (issue 12)."""
        from billing_engine.stripe.reconcile.rules import MismatchKind

        self.stripe_credits = Gauge(
            "stripe_credits",
            "Credits by their state in Stripe: pending (not applied there yet), sent, failed "
            "(Stripe refused it), legacy (granted before credits went to Stripe).",
            ["status"],
            registry=r,
        )
        self.stripe_credits_sent = Counter(
            "stripe_credits_sent_total",
            "Attempts to apply a credit in Stripe, by outcome: sent, retry, failed.",
            ["outcome"],
            registry=r,
        )
        for outcome in ("sent", "retry", "failed"):
            self.stripe_credits_sent.labels(outcome)
        self.stripe_resyncs = Counter(
            "stripe_resyncs_total",
            "Orgs resynced from Stripe on demand, by outcome: changed, unchanged, failed.",
            ["outcome"],
            registry=r,
        )
        for outcome in ("changed", "unchanged", "failed"):
            self.stripe_resyncs.labels(outcome)
        self.billing_reconciliation_mismatches = Gauge(
            "billing_reconciliation_mismatches",
            "Mismatches the last reconciliation run found, by kind (docs/stripe.md"
            "#reconciliation).",
            ["kind"],
            registry=r,
        )
        for kind in MismatchKind:
            self.billing_reconciliation_mismatches.labels(kind.value)
        self.billing_reconciliation_last_run = Gauge(
            "billing_reconciliation_last_run_timestamp_seconds",
            "When the last reconciliation run (any trigger) finished, in seconds since the epoch; "
            "0 before the first.",
            registry=r,
        )
