"""Usage reporting to Stripe: closed hours into the outbox, the outbox out to Stripe.

The rule for when an hour is reported: an UTC hour closes once it ended `close_delay` ago
(METER_CLOSE_DELAY_SECONDS, default 5 minutes: more than the heartbeat clock-skew allowance plus
a normal delivery delay). Its minutes then go out as version 1. Minutes that arrive for it later
(a late batch, a replayed heartbeat log) go out as a correction record carrying only the
difference, so Stripe's sum always equals the minutes we hold and no minute is counted twice.
Only orgs with a Stripe customer id are reported; an org linked later has its usage of the
still-open billing period reported from the start of that period.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from billing_core.periods import minute_of
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.stripe.client import ErrorKind, MeterEvent, PaymentProvider, ProviderError
from billing_engine.stripe.meters.rules import (
    is_duplicate_identifier,
    outside_window,
    retry_delay,
    stripe_identifier,
    window_deadline,
)
from billing_engine.stripe.meters.store import (
    FAILED,
    PENDING,
    REJECTED,
    MeterStore,
    OutboxRecord,
)
from billing_engine.usage.rules import earliest_open_instant

log = logging.getLogger("billing_engine.meters")
Clock = Callable[[], datetime]

OUTCOMES_SHOWN = 100


@dataclass(frozen=True)
class MeterConfig:
    event_name: str = "instance_minutes"
    close_delay: timedelta = timedelta(minutes=5)
    period_close_grace: timedelta = timedelta(hours=1)
    batch_size: int = 500
    chunk_size: int = 50  # records claimed at a time; the lease covers sending one chunk
    lease: timedelta = timedelta(minutes=10)
    backoff_base: timedelta = timedelta(seconds=30)
    backoff_max: timedelta = timedelta(hours=1)


def closed_before_minute(now: datetime, close_delay: timedelta) -> int:
    """The first minute of the oldest hour that is not closed yet at `now`."""
    return minute_of(now - close_delay) // 60 * 60


@dataclass
class FlushResult:
    provider: str
    enqueued: int = 0
    attempted: int = 0
    sent: int = 0
    retrying: int = 0
    failed: int = 0
    expired: int = 0
    stopped: str | None = None  # why the run ended early: circuit_open, rate_limited, unauthorized
    resume_at: datetime | None = None
    outcomes: list[dict[str, Any]] | None = None
    errors: Counter[str] | None = None

    def note(self, record: OutboxRecord, outcome: str, error: str | None = None) -> None:
        if self.outcomes is None:
            self.outcomes = []
        if len(self.outcomes) < OUTCOMES_SHOWN:
            entry: dict[str, Any] = {
                "identifier": record.identifier,
                "org_id": record.org_id,
                "minutes": record.minutes,
                "outcome": outcome,
            }
            if error:
                entry["error"] = error
            self.outcomes.append(entry)

    def count_error(self, kind: ErrorKind) -> None:
        if self.errors is None:
            self.errors = Counter()
        self.errors[kind.value] += 1

    def as_json(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "enqueued": self.enqueued,
            "attempted": self.attempted,
            "sent": self.sent,
            "retrying": self.retrying,
            "failed": self.failed,
            "expired": self.expired,
            "errors": dict(self.errors or {}),
            "stopped": self.stopped,
            "resume_at": self.resume_at.isoformat() if self.resume_at else None,
            "records": self.outcomes or [],
        }


def record_json(record: OutboxRecord, *, now: datetime) -> dict[str, Any]:
    return {
        "id": record.id,
        "identifier": record.identifier,
        "org_id": record.org_id,
        "hour": record.hour_start.isoformat(),
        "version": record.version,
        "minutes": record.minutes,
        "state": record.state,
        "attempts": record.attempts,
        "next_attempt_at": record.next_attempt_at.isoformat(),
        "last_error": record.last_error,
        "last_status": record.last_status,
        "stripe_customer_id": record.stripe_customer_id,
        "generation": record.generation,
        "sent_identifier": (
            stripe_identifier(record.identifier, customer=record.stripe_customer_id,
                              generation=record.generation)
            if record.stripe_customer_id else None
        ),
        "created_at": record.created_at.isoformat(),
        "age_seconds": max(0, int((now - record.created_at).total_seconds())),
    }


class MeterReporting:
    def __init__(
        self,
        *,
        store: MeterStore,
        provider: PaymentProvider,
        metrics: EngineMetrics,
        config: MeterConfig,
        clock: Clock,
    ) -> None:
        self.store = store
        self.provider = provider
        self.metrics = metrics
        self.config = config
        self.clock = clock
        self._lock = threading.Lock()
        self._paused_until: datetime | None = None  # after a 429, for this process
        metrics.stripe_breaker_state.set_function(lambda: float(provider.breaker_state()))

    # -- enqueue ----------------------------------------------------------------------------

    def enqueue(self, now: datetime | None = None) -> int:
        now = now or self.clock()
        window_start = earliest_open_instant(now=now, grace=self.config.period_close_grace)
        return self.store.enqueue_closed_hours(
            window_start_minute=minute_of(window_start),
            closed_before_minute=closed_before_minute(now, self.config.close_delay),
            now=now,
        )

    # -- flush ------------------------------------------------------------------------------

    def flush(self, *, force: bool = False) -> FlushResult:
        """Enqueue newly closed hours, then send what is due. `force` (the admin flush) also
        sends records waiting out a backoff or a Retry-After; the circuit breaker still
        decides whether Stripe is called at all."""
        with self._lock:
            result = self._flush(force=force)
        self.refresh_gauges()
        if result.attempted or result.enqueued or result.stopped:
            log.info(
                "meter flush",
                extra={k: v for k, v in result.as_json().items() if k != "records"},
            )
        return result

    def _flush(self, *, force: bool) -> FlushResult:
        cfg = self.config
        now = started = self.clock()
        result = FlushResult(provider=self.provider.name)
        result.enqueued = self.enqueue(now)
        if not force and self._paused_until is not None and now < self._paused_until:
            result.stopped = ErrorKind.RATE_LIMITED.value
            result.resume_at = self._paused_until
            return result
        if force:
            self.store.make_due(now=now)
        while result.attempted < cfg.batch_size and result.stopped is None:
            now = self.clock()
            # Due as of the run's start: a record retried in this run waits for the next one.
            chunk = self.store.claim_due(
                now=now,
                due_before=started,
                limit=min(cfg.chunk_size, cfg.batch_size - result.attempted),
                lease_until=now + cfg.lease,
            )
            if not chunk:
                break
            for index, record in enumerate(chunk):
                stop = self._send(record, result)
                if stop is not None:
                    result.stopped, result.resume_at = stop
                    untried = [r.id for r in chunk[index + 1 :]]
                    self.store.release(untried, next_attempt_at=stop[1])
                    break
        return result

    def _send(self, record: OutboxRecord, result: FlushResult) -> tuple[str, datetime] | None:
        """Send one record and store the outcome; returns (why, until) when the run must stop."""
        cfg = self.config
        customer = record.stripe_customer_id
        if not customer:
            # Unlinked since it was queued: wait for a customer instead of sending blind.
            now = self.clock()
            delay = retry_delay(record.attempts + 1, base=cfg.backoff_base, cap=cfg.backoff_max)
            self.store.mark_retry(
                record.id,
                next_attempt_at=now + delay,
                error="org has no Stripe customer id",
                status=None,
                customer=None,
            )
            result.retrying += 1
            result.note(record, "waiting", "org has no Stripe customer id")
            return None
        if outside_window(record.hour_start, now=self.clock()):
            error = (f"not sent: Stripe takes meter events from the past 35 days only; this "
                     f"hour could be sent until {window_deadline(record.hour_start).isoformat()}")
            self.store.mark_expired([record.id], error=error)
            self.metrics.meter_records_expired.inc()
            log.warning("meter record expired before it reached stripe",
                        extra={"identifier": record.identifier, "org_id": record.org_id})
            result.expired += 1
            result.note(record, "expired", error)
            return None
        event = MeterEvent(
            identifier=stripe_identifier(
                record.identifier, customer=customer, generation=record.generation
            ),
            event_name=cfg.event_name,
            stripe_customer_id=customer,
            value=record.minutes,
            timestamp=record.hour * 3600,
        )
        try:
            self.provider.report_meter_event(event)
        except ProviderError as exc:
            return self._failed(record, exc, result)
        result.attempted += 1
        self.store.mark_sent(record.id, now=self.clock(), customer=customer, status=200)
        self.metrics.meter_events_sent.inc()
        result.sent += 1
        result.note(record, "sent")
        return None

    def _failed(
        self, record: OutboxRecord, exc: ProviderError, result: FlushResult
    ) -> tuple[str, datetime] | None:
        cfg = self.config
        now = self.clock()
        customer = record.stripe_customer_id
        self.metrics.meter_errors.labels(exc.kind.value).inc()
        result.count_error(exc.kind)
        error = exc.describe()
        if exc.kind is ErrorKind.CIRCUIT_OPEN:
            # Not attempted: the record goes back as it was, due when the breaker may probe.
            until = now + timedelta(seconds=exc.retry_after_seconds or 0)
            self.store.release([record.id], next_attempt_at=until)
            result.note(record, "not_attempted", error)
            return exc.kind.value, until
        result.attempted += 1
        if exc.kind is ErrorKind.CLIENT_ERROR and is_duplicate_identifier(
            exc.http_status, exc.detail
        ):
            # Stripe holds this identifier already: an earlier attempt got through.
            status = exc.http_status or 400
            self.store.mark_sent(record.id, now=now, customer=customer or "", status=status)
            self.metrics.meter_events_sent.inc()
            result.sent += 1
            result.note(record, "sent", "already counted by Stripe")
            return None
        if exc.record_is_at_fault:
            self.store.mark_failed(
                record.id, error=error, status=exc.http_status, customer=customer
            )
            log.warning(
                "meter record refused by stripe",
                extra={"identifier": record.identifier, "status": exc.http_status, "reason": error},
            )
            result.failed += 1
            result.note(record, "failed", error)
            return None
        delay = retry_delay(record.attempts + 1, base=cfg.backoff_base, cap=cfg.backoff_max)
        if exc.kind is ErrorKind.RATE_LIMITED and exc.retry_after_seconds is not None:
            delay = timedelta(seconds=exc.retry_after_seconds)
        next_at = now + delay
        self.store.mark_retry(
            record.id,
            next_attempt_at=next_at,
            error=error,
            status=exc.http_status,
            customer=customer,
        )
        result.retrying += 1
        result.note(record, "retrying", error)
        if exc.kind is ErrorKind.RATE_LIMITED:
            self._paused_until = next_at
            return exc.kind.value, next_at
        if exc.kind is ErrorKind.CLIENT_ERROR:  # 401/403: the key, not the record
            log.warning(
                "stripe refused the API key; usage reporting stopped until the next flush",
                extra={"status": exc.http_status, "reason": error},
            )
            return "unauthorized", next_at
        return None

    # -- views and gauges -------------------------------------------------------------------

    def refresh_gauges(self) -> None:
        stats = self.store.stats()
        now = self.clock()
        self.metrics.meter_queue.set(stats.pending)
        self.metrics.meter_failed.set(stats.failed)
        oldest = stats.oldest_pending_created_at
        self.metrics.meter_oldest_age.set(
            0 if oldest is None else max(0.0, (now - oldest).total_seconds())
        )
        hour = stats.oldest_pending_hour
        self.metrics.meter_oldest_unsent_event_age.set(
            0 if hour is None else max(0.0, now.timestamp() - hour * 3600)
        )
        self.metrics.meter_rejected.set(stats.rejected)
        self.metrics.meter_expired.set(stats.expired)

    def pending_view(self, limit: int) -> dict[str, Any]:
        now = self.clock()
        stats = self.store.stats()
        oldest = stats.oldest_pending_created_at
        return {
            "provider": self.provider.name,
            "simulated": self.provider.simulated,
            "circuit_breaker": self.provider.breaker_state().name.lower(),
            "count": stats.pending,
            "failed_count": stats.failed,
            "rejected_count": stats.rejected,
            "expired_count": stats.expired,
            "sent_count": stats.sent,
            "oldest_age_seconds": 0 if oldest is None else int((now - oldest).total_seconds()),
            "oldest": [record_json(r, now=now) for r in self.store.oldest(PENDING, limit=limit)],
            "failed": [record_json(r, now=now) for r in self.store.oldest(FAILED, limit=limit)],
            "rejected": [
                record_json(r, now=now) for r in self.store.oldest(REJECTED, limit=limit)
            ],
            "hint": "POST /admin/meters/flush sends what is due now; "
            "POST /admin/meters/requeue-failed retries refused records after a fix",
        }

    def requeue_failed(self, org_id: str | None) -> dict[str, Any]:
        count = self.store.requeue_failed(now=self.clock(), org_id=org_id)
        self.refresh_gauges()
        return {"requeued": count, "org_id": org_id}


class MeterFlusher:
    """Runs the flush every `interval` seconds in a background thread, like the Housekeeper."""

    def __init__(self, reporting: MeterReporting, interval: float,
                 claim: Callable[[], bool] = lambda: True) -> None:
        self.reporting = reporting
        self.interval = interval
        # Whether this replica flushes now: housekeeping's claim of the current slot, so one
        # replica enqueues and sends per interval (operability/housekeeping.py).
        self.claim = claim
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="meter-flush", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=15)

    def _loop(self) -> None:
        while not self._stop.is_set():
            wait = self.interval
            try:
                if not self.claim():
                    self._stop.wait(wait)
                    continue
                result = self.reporting.flush()
                if result.attempted >= self.reporting.config.batch_size and not result.stopped:
                    wait = 0  # a full batch went out: work off the backlog without pausing
            except Exception as exc:  # the next round tries again; the gauges show the backlog
                log.warning("meter flush failed", extra={"reason": str(exc)[:200]})
            self._stop.wait(wait)
