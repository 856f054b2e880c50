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
from concurrent.futures import Future, ThreadPoolExecutor
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
from billing_engine.stripe.meters.sender import Item, Outcome, Sender, SendReport
from billing_engine.stripe.meters.store import (
    FAILED,
    PENDING,
    REJECTED,
    SENT,
    HourBusy,
    MeterStore,
    OutboxRecord,
)
from billing_engine.usage.rules import earliest_open_instant

log = logging.getLogger("billing_engine.meters")
# Stripe cancels a meter event only within 24 hours of receiving it; kept clear of the edge.
CANCEL_WINDOW = timedelta(hours=23, minutes=30)
Clock = Callable[[], datetime]

OUTCOMES_SHOWN = 100


@dataclass(frozen=True)
class MeterConfig:
    event_name: str = "instance_minutes"
    close_delay: timedelta = timedelta(minutes=5)
    period_close_grace: timedelta = timedelta(hours=1)
    batch_size: int = 500
    # Records claimed at a time; the lease covers sending one chunk. A chunk of at least
    # `stream_min_records` goes by the v2 meter event stream, a smaller one by v1.
    chunk_size: int = 2000
    stream_min_records: int = 20
    concurrency: int = 8  # requests to Stripe in flight at once
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
        self.sender = Sender(provider, concurrency=config.concurrency)
        # One chunk on its way while the flush's thread does the database work around it.
        self._dispatcher = ThreadPoolExecutor(max_workers=1, thread_name_prefix="meter-chunk")
        self._lock = threading.Lock()
        metrics.stripe_breaker_state.set_function(lambda: float(provider.breaker_state()))

    def close(self) -> None:
        self._dispatcher.shutdown(wait=True)
        self.sender.close()

    # -- enqueue ----------------------------------------------------------------------------

    def enqueue(self, now: datetime | None = None) -> int:
        now = now or self.clock()
        window_start = earliest_open_instant(now=now, grace=self.config.period_close_grace)
        added = self.store.enqueue_closed_hours(
            window_start_minute=minute_of(window_start),
            closed_before_minute=closed_before_minute(now, self.config.close_delay),
            now=now,
        )
        return added + self.correct_downwards(now, window_start=window_start)

    def correct_downwards(self, now: datetime, *, window_start: datetime) -> int:
        """Hours whose reported minutes exceed what we hold now (usage that went down, e.g.
        after a rebuild of the raw usage): their events are cancelled in Stripe by meter event
        adjustments (Stripe allows it within 24 hours of receiving an event), their records
        withdrawn, and the hour's new total queued under a new identifier. An hour with an
        event Stripe received longer ago cannot be corrected so: its excess minutes show in
        `usage_meter_overreported_seconds` (and stay billed: a credit gives them back)."""
        over = self.store.over_reported_hours(
            window_start_minute=minute_of(window_start),
            closed_before_minute=closed_before_minute(now, self.config.close_delay),
        )
        queued = 0
        stuck_minutes = 0
        for org_id, hour, held in over:
            records = self.store.live_records_of_hour(org_id, hour)
            sent = [r for r in records if r.state == SENT]
            if any(r.sent_at is None or now - r.sent_at > CANCEL_WINDOW for r in sent):
                stuck_minutes += sum(r.minutes for r in records) - held
                continue
            reason = f"withdrawn: the hour now holds {held} minutes"
            try:
                for record in sent:
                    assert record.stripe_customer_id is not None
                    self.provider.cancel_meter_event(
                        event_name=self.config.event_name,
                        identifier=stripe_identifier(record.identifier,
                                                     customer=record.stripe_customer_id,
                                                     generation=record.generation),
                    )
                    self.store.replace_hour(org_id, hour, withdrawn=[record.id], minutes=0,
                                            now=now, reason=reason)
                    self.metrics.meter_adjustments.inc()
                pending = [r.id for r in records if r.state == PENDING]
                if self.store.replace_hour(org_id, hour, withdrawn=pending, minutes=held,
                                           now=now, reason=reason) is not None:
                    queued += 1
            except ProviderError as exc:
                log.warning("meter event adjustment failed; the next round tries again",
                            extra={"org_id": org_id, "reason": exc.describe()})
            except HourBusy:
                continue
        self.metrics.meter_overreported.set(stuck_minutes * 60)
        return queued

    # -- flush ------------------------------------------------------------------------------

    def flush(self, *, force: bool = False, enqueue: bool = True) -> FlushResult:
        """Enqueue newly closed hours (unless another replica does it this round), then send
        what is due. `force` (the admin flush) also sends records waiting out a backoff or a
        Retry-After; the circuit breaker still decides whether Stripe is called at all."""
        with self._lock:
            result = self._flush(force=force, enqueue=enqueue)
        self.refresh_gauges()
        if result.attempted or result.enqueued or result.stopped or result.expired:
            log.info(
                "meter flush",
                extra={k: v for k, v in result.as_json().items() if k != "records"},
            )
        return result

    def _flush(self, *, force: bool, enqueue: bool) -> FlushResult:
        cfg = self.config
        now = started = self.clock()
        result = FlushResult(provider=self.provider.name)
        if enqueue:
            result.enqueued = self.enqueue(now)
        if force:
            self.store.make_due(now=now)
        handled = 0
        # Pipelined: while one chunk is on its way to Stripe, this thread writes the outcome of
        # the chunk before and claims the next, so the database and the network overlap.
        in_flight: tuple[bool, Future[SendReport]] | None = None
        while True:
            chunk: list[OutboxRecord] = []
            if handled < cfg.batch_size and result.stopped is None:
                now = self.clock()
                # Due as of the run's start: a record retried in this run waits for the next.
                chunk = self.store.claim_due(
                    now=now,
                    due_before=started,
                    limit=min(cfg.chunk_size, cfg.batch_size - handled),
                    lease_until=now + cfg.lease,
                )
                handled += len(chunk)
            dispatched = self._dispatch(chunk, result) if chunk else None
            if in_flight is not None:
                self._settle_chunk(*in_flight, result)
            in_flight = dispatched
            if not chunk and in_flight is None:
                break
        return result

    def _dispatch(
        self, chunk: list[OutboxRecord], result: FlushResult
    ) -> tuple[bool, Future[SendReport]] | None:
        """Put aside what must not be sent, then start sending the rest; returns whether it
        goes by the stream and the report to come."""
        cfg = self.config
        now = self.clock()
        items: list[Item] = []
        expired: list[OutboxRecord] = []
        for record in chunk:
            customer = record.stripe_customer_id
            if not customer:
                # Unlinked since it was queued: wait for a customer instead of sending blind.
                delay = retry_delay(record.attempts + 1, base=cfg.backoff_base,
                                    cap=cfg.backoff_max)
                self.store.mark_retry(record, next_attempt_at=now + delay,
                                      error="org has no Stripe customer id", status=None,
                                      customer=None)
                result.retrying += 1
                result.note(record, "waiting", "org has no Stripe customer id")
            elif outside_window(record.hour_start, now=now):
                expired.append(record)
            else:
                items.append((record, self._event(record, customer)))
        self._expire(expired, result)
        if not items:
            return None
        streamed = len(items) >= cfg.stream_min_records
        send = self.sender.stream if streamed else self.sender.one_by_one
        return streamed, self._dispatcher.submit(send, items)

    def _settle_chunk(
        self, streamed: bool, pending: Future[SendReport], result: FlushResult
    ) -> None:
        report = pending.result()
        accepted: list[OutboxRecord] = []  # marked sent in one statement below
        for outcome in report.done:
            if streamed and outcome.error is not None and outcome.error.record_is_at_fault:
                # The stream refused the request whole; v1 validates each event and names the
                # one at fault, so the batch goes again that way.
                again = self.sender.one_by_one(outcome.items)
                report.untried.extend(again.untried)
                report.held_back_by.update(again.held_back_by)
                for inner in again.done:
                    self._settle(inner, result, accepted, via="v1")
                report.stop = report.stop or again.stop
            else:
                self._settle(outcome, result, accepted, via="stream" if streamed else "v1")
        self._sent(accepted, result)
        self._hold_back(report, result)

    def _settle(
        self, outcome: Outcome, result: FlushResult, accepted: list[OutboxRecord], *, via: str
    ) -> None:
        if outcome.error is None:
            self.metrics.meter_requests.labels(via).inc()
            accepted.extend(record for record, _ in outcome.items)
        else:
            self._apply(outcome, result, via=via)

    def _event(self, record: OutboxRecord, customer: str) -> MeterEvent:
        return MeterEvent(
            identifier=stripe_identifier(
                record.identifier, customer=customer, generation=record.generation
            ),
            event_name=self.config.event_name,
            stripe_customer_id=customer,
            value=record.minutes,
            timestamp=record.hour * 3600,
        )

    def _expire(self, records: list[OutboxRecord], result: FlushResult) -> None:
        if not records:
            return
        for record in records:
            error = ("not sent: Stripe takes meter events from the past 35 days only; this "
                     f"hour could be sent until {window_deadline(record.hour_start).isoformat()}")
            self.store.mark_expired([record], error=error)
            result.note(record, "expired", error)
            log.warning("meter record expired before it reached stripe",
                        extra={"identifier": record.identifier, "org_id": record.org_id})
        self.metrics.meter_records_expired.inc(len(records))
        result.expired += len(records)

    def _sent(self, records: list[OutboxRecord], result: FlushResult) -> None:
        if not records:
            return
        self.store.mark_sent_many(records, now=self.clock(), status=200)
        self.metrics.meter_events_sent.inc(len(records))
        result.attempted += len(records)
        result.sent += len(records)
        for record in records:
            result.note(record, "sent")

    def _apply(self, outcome: Outcome, result: FlushResult, *, via: str) -> None:
        """Store what Stripe answered to a request that failed."""
        exc = outcome.error
        assert exc is not None
        cfg = self.config
        now = self.clock()
        self.metrics.meter_requests.labels(via).inc()
        records = [record for record, _ in outcome.items]
        self.metrics.meter_errors.labels(exc.kind.value).inc()
        result.count_error(exc.kind)
        error = exc.describe()
        result.attempted += len(records)
        if exc.kind is ErrorKind.CLIENT_ERROR and is_duplicate_identifier(
            exc.http_status, exc.detail
        ):
            # Stripe holds this identifier already: an earlier attempt got through.
            self.store.mark_sent_many(records, now=now, status=exc.http_status or 400)
            self.metrics.meter_events_sent.inc(len(records))
            result.sent += len(records)
            for record in records:
                result.note(record, "sent", "already counted by Stripe")
            return
        for record in records:
            customer = record.stripe_customer_id
            if exc.record_is_at_fault:
                self.store.mark_failed(record, error=error, status=exc.http_status,
                                       customer=customer)
                log.warning("meter record refused by stripe", extra={
                    "identifier": record.identifier, "status": exc.http_status, "reason": error})
                result.failed += 1
                result.note(record, "failed", error)
                continue
            delay = retry_delay(record.attempts + 1, base=cfg.backoff_base, cap=cfg.backoff_max)
            if exc.kind is ErrorKind.RATE_LIMITED and exc.retry_after_seconds is not None:
                delay = timedelta(seconds=exc.retry_after_seconds)
            self.store.mark_retry(record, next_attempt_at=now + delay, error=error,
                                  status=exc.http_status, customer=customer)
            result.retrying += 1
            result.note(record, "retrying", error)
        if exc.kind is ErrorKind.CLIENT_ERROR and not exc.record_is_at_fault:
            log.warning(
                "stripe refused the API key; usage reporting stopped until the next flush",
                extra={"status": exc.http_status, "reason": error},
            )

    def _hold_back(self, report: SendReport, result: FlushResult) -> None:
        """Records not attempted go back as they were: due when what held them back ends."""
        cfg = self.config
        now = self.clock()
        stop = report.stop
        if stop is not None:
            if stop.kind is ErrorKind.CIRCUIT_OPEN:
                self.metrics.meter_errors.labels(stop.kind.value).inc()
                result.count_error(stop.kind)
                result.stopped = stop.kind.value
                result.resume_at = now + timedelta(seconds=stop.retry_after_seconds or 0)
            else:
                result.stopped = "unauthorized"
                result.resume_at = now + cfg.backoff_base
        for record, _ in report.untried:
            waits_for = report.held_back_by.get(record.id)
            if waits_for is not None:
                until = now + (
                    timedelta(seconds=waits_for.retry_after_seconds)
                    if waits_for.retry_after_seconds is not None else cfg.backoff_base
                )
                self.store.release([record], next_attempt_at=until)
                result.note(record, "not_attempted", "its customer is rate limited")
                continue
            until = result.resume_at or now
            self.store.release([record], next_attempt_at=until)
            result.note(record, "not_attempted", stop.describe() if stop else None)


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
        # Whether this replica enqueues now: housekeeping's claim of the current slot, so one
        # replica enqueues per interval (operability/housekeeping.py); all of them send.
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
                # Every replica sends (claims keep records apart); one enqueues per slot.
                result = self.reporting.flush(enqueue=self.claim())
                if result.attempted >= self.reporting.config.batch_size and not result.stopped:
                    wait = 0  # a full batch went out: work off the backlog without pausing
            except Exception as exc:  # the next round tries again; the gauges show the backlog
                log.warning("meter flush failed", extra={"reason": str(exc)[:200]})
            self._stop.wait(wait)
