"""The outbox worker: claim due messages, send each through its channel, then mark it.

- Each lane (`lanes.py`) has its own worker and its own senders: the pages worker claims only
  pages, so bulk mail queued before a page never delays it.

- A claim is a lease written to the database before sending, so a second worker (or the next
  leader after a crash) leaves the message alone until the lease runs out.
- A failed attempt is counted in `alert_notifications_failed_total{channel,reason}` and retried
  with exponential backoff (OUTBOX_BACKOFF_SECONDS doubling up to OUTBOX_BACKOFF_MAX_SECONDS).
- A receiver that answers 429 with Retry-After gets nothing more until that time has passed: the
  message and everything else queued for that receiver wait.
- A failure retrying cannot fix (the channel says permanent, or OUTBOX_MAX_ATTEMPTS reached) is
  marked failed in the outbox with its reason and detail, logged as an error, and stays visible
  in the API's delivery status. Nothing is dropped silently.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from alerts.delivery.lanes import BULK_LANE, PAGE, PAGES, Lane
from alerts.delivery.message import Channel, DeliveryResult, message_from_json
from alerts.delivery.store import OutboxItem, OutboxStore
from alerts.observability.metrics import AlertsMetrics, failure_reason
from billing_core.clock import Clock

log = logging.getLogger("alerts.outbox")

ChannelResolver = Callable[[str], Channel | None]


@dataclass(frozen=True)
class RetryPolicy:
    backoff: timedelta = timedelta(seconds=5)
    backoff_max: timedelta = timedelta(minutes=15)
    max_attempts: int = 12
    lease: timedelta = timedelta(minutes=2)

    def delay(self, attempts: int) -> timedelta:
        """Wait before the next attempt, after `attempts` failed ones (1, 2, ...)."""
        factor = 2 ** max(0, min(attempts - 1, 30))
        return min(self.backoff_max, self.backoff * factor)


@dataclass
class DrainReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    deferred: int = 0
    outcomes: list[tuple[int, DeliveryResult]] = field(default_factory=list)


def attempt(channel: Channel, item_channel: str, send: Callable[[], DeliveryResult],
            metrics: AlertsMetrics) -> DeliveryResult:
    """Run one send, never letting an exception escape, and count it."""
    try:
        result = send()
    except Exception as error:  # a channel bug must not stop the worker; retry it like a fault
        log.exception("channel raised instead of answering", extra={"channel": item_channel})
        result = DeliveryResult(ok=False, reason="connection",
                                detail=f"{type(error).__name__}: {error}"[:500])
    if result.ok:
        metrics.sent.labels(item_channel).inc()
    else:
        metrics.failed.labels(item_channel, failure_reason(result.reason)).inc()
    return result


class OutboxWorker:
    def __init__(self, *, store: OutboxStore, resolve: ChannelResolver, metrics: AlertsMetrics,
                 clock: Clock, policy: RetryPolicy | None = None,
                 worker_id: str | None = None, lane: Lane | None = None) -> None:
        self.store = store
        self.resolve = resolve
        self.metrics = metrics
        self.clock = clock
        self.policy = policy or RetryPolicy()
        self.lane = lane  # None: every priority (one worker for everything)
        suffix = f"-{lane.name}" if lane is not None else ""
        self.worker_id = worker_id or f"alerts-{uuid.uuid4().hex[:12]}{suffix}"
        self._paused_until: dict[str, datetime] = {}  # receiver -> Retry-After end
        self._lock = threading.Lock()

    def drain(self, *, batch: int = 20, max_batches: int = 50,
              should_continue: Callable[[], bool] = lambda: True) -> DrainReport:
        """Send what is due now, batch by batch, until nothing is due (or we stop leading)."""
        report = DrainReport()
        if not self._lock.acquire(blocking=False):
            return report  # another thread is draining; it will pick these up
        try:
            for _ in range(max_batches):
                if not should_continue():
                    break
                now = self.clock()
                paused = [r for r, until in self._paused_until.items() if until > now]
                items = self.store.claim_due(
                    now=now, worker=self.worker_id, lease=self.policy.lease, limit=batch,
                    priorities=self.lane.priorities if self.lane is not None else None,
                    skip_receivers=paused)
                if not items:
                    break
                for item in items:
                    self._deliver(item, report)
        finally:
            self._lock.release()
            self.refresh_gauges()
        return report

    def refresh_gauges(self) -> None:
        try:
            depth, oldest = self.store.outbox_stats(now=self.clock())
        except Exception as error:  # the gauges wait for the next round
            log.warning("outbox gauges not refreshed", extra={"reason": str(error)[:200]})
            return
        self.metrics.outbox_depth.set(depth)
        self.metrics.outbox_oldest_age.set(oldest)

    def standby_gauges(self) -> None:
        """A standby sends nothing: it reports an empty outbox, so sum() across replicas holds."""
        self.metrics.outbox_depth.set(0)
        self.metrics.outbox_oldest_age.set(0)

    def purge(self, *, retention: timedelta) -> tuple[int, int]:
        """Forget what was delivered (or failed) longer than `retention` ago."""
        sent, logged = self.store.purge(before=self.clock() - retention)
        if sent or logged:
            log.info("old deliveries purged", extra={"outbox_rows": sent, "log_rows": logged})
        return sent, logged

    def _deliver(self, item: OutboxItem, report: DrainReport) -> None:
        now = self.clock()
        paused_until = self._paused_until.get(item.receiver)
        if paused_until is not None and paused_until > now:
            # An earlier message of this batch was told to wait: this one waits too, unharmed.
            self.store.release(item.id, worker=self.worker_id, now=now,
                               next_attempt_at=paused_until)
            report.deferred += 1
            return
        channel = self.resolve(item.receiver)
        if channel is None:
            result = DeliveryResult(ok=False, permanent=True, reason="rejected",
                                    detail=f"receiver {item.receiver!r} is not configured "
                                           "(unknown, or its address, URL, key or credential is "
                                           "empty)")
            self.metrics.failed.labels(item.channel, "rejected").inc()
        else:
            try:
                message = message_from_json(item.payload or "")
            except (ValueError, KeyError, TypeError) as error:
                result = DeliveryResult(ok=False, permanent=True, reason="rejected",
                                        detail=f"unreadable payload: {error!r}"[:500])
                self.metrics.failed.labels(item.channel, "rejected").inc()
            else:
                result = attempt(channel, item.channel, lambda: channel.send(message),
                                 self.metrics)
        report.outcomes.append((item.id, result))
        attempts = item.attempts + 1
        done = self.clock()
        if result.ok:
            self.store.mark_sent(item.id, worker=self.worker_id, now=done, attempts=attempts)
            report.sent += 1
            lane = PAGES.name if item.priority == PAGE else BULK_LANE.name
            self.metrics.delivery_latency.labels(lane).observe(
                max(0.0, (done - item.created_at).total_seconds()))
            log.info("notification sent", extra={
                "outbox_id": item.id, "kind": item.kind, "receiver": item.receiver,
                "channel": item.channel, "attempts": attempts})
            return
        if result.permanent or attempts >= self.policy.max_attempts:
            self.store.mark_failed(item.id, worker=self.worker_id, now=done, attempts=attempts,
                                   reason=failure_reason(result.reason), detail=result.detail)
            report.failed += 1
            log.error("notification failed for good", extra={
                "outbox_id": item.id, "kind": item.kind, "receiver": item.receiver,
                "channel": item.channel, "attempts": attempts, "reason": result.reason,
                "detail": result.detail[:300],
                "why": "permanent" if result.permanent else "max attempts reached"})
            return
        if result.retry_after is not None:
            wait = timedelta(seconds=result.retry_after)
            self._paused_until[item.receiver] = done + wait
        else:
            wait = self.policy.delay(attempts)
        self.store.mark_retry(item.id, worker=self.worker_id, now=done, attempts=attempts,
                              next_attempt_at=done + wait, reason=failure_reason(result.reason),
                              detail=result.detail)
        report.retried += 1
        log.warning("notification attempt failed; will retry", extra={
            "outbox_id": item.id, "receiver": item.receiver, "channel": item.channel,
            "attempts": attempts, "reason": result.reason, "detail": result.detail[:300],
            "retry_in_seconds": round(wait.total_seconds(), 3)})
