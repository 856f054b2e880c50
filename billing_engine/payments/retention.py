"""Retention: payment records older than PAYMENT_RETENTION_DAYS are deleted, hourly at most."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from billing_engine.payments.store import PaymentStore
from billing_engine.stripe.webhooks.store import InboxStore

log = logging.getLogger("billing_engine.retention")
DEFAULT_INTERVAL_SECONDS = 3600.0


class PaymentRetention:
    """Deletes payment attempts and refunds from before the retention window, and inbox rows of
    Stripe events that were done before it (Stripe stops redelivering after three days)."""

    def __init__(
        self,
        payments: PaymentStore,
        *,
        inbox: InboxStore,
        days: int,
        clock: Callable[[], datetime],
        interval_seconds: float = DEFAULT_INTERVAL_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.payments = payments
        self.inbox = inbox
        self.days = days
        self.clock = clock
        self.interval_seconds = interval_seconds
        self._monotonic = monotonic
        self._next_due = 0.0
        self._lock = threading.Lock()

    def run(self) -> dict[str, Any]:
        now = self.clock()
        cutoff = now - timedelta(days=self.days)
        attempts, refunds = self.payments.delete_before(cutoff)
        events = self.inbox.delete_done_before(cutoff)
        if attempts or refunds or events:
            log.info(
                "payment records past retention deleted",
                extra={"payment_attempts": attempts, "refunds": refunds, "stripe_events": events},
            )
        return {
            "cutoff": cutoff.isoformat(),
            "retention_days": self.days,
            "payment_attempts_deleted": attempts,
            "refunds_deleted": refunds,
            "stripe_events_deleted": events,
        }

    def run_if_due(self) -> dict[str, Any] | None:
        """Called every housekeeping round; deletes at most once per interval."""
        with self._lock:
            if self._monotonic() < self._next_due:
                return None
            self._next_due = self._monotonic() + self.interval_seconds
        return self.run()
