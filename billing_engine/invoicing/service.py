"""Use cases of invoices and credits: close a period, list invoices, grant credits.

A period closes once it has ended and PERIOD_CLOSE_GRACE_SECONDS have passed (after that no late
heartbeat is accepted for it, so its usage is final). Closing invoices every org that existed
before the period ended, in batches of one transaction each; closing again writes nothing new.
The open period's invoice (the billing card's preview) goes through the same `build_invoice`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from billing_core.clock import Clock, utc_now
from billing_core.errors import Conflict, InvalidRequest
from billing_core.periods import BillingPeriod, period_containing, period_from_field
from billing_core.plans import PlanCatalog
from billing_engine.customers.service import Customers
from billing_engine.invoicing.rules import InvoiceDraft, StripeInvoice, build_invoice
from billing_engine.invoicing.store import (
    CreditRecord,
    InvoiceStore,
    OrgToInvoice,
    StoredInvoice,
)
from billing_engine.operability.metrics import EngineMetrics

log = logging.getLogger("billing_engine.invoices")
CLOSE_BATCH_SIZE = 500


@dataclass(frozen=True)
class PeriodClose:
    period: BillingPeriod
    orgs: int
    created: int
    total: int


class Invoicing:
    def __init__(
        self,
        *,
        store: InvoiceStore,
        customers: Customers,
        catalog: PlanCatalog,
        metrics: EngineMetrics,
        close_grace: timedelta,
        clock: Clock = utc_now,
        batch_size: int = CLOSE_BATCH_SIZE,
    ) -> None:
        self.store = store
        self.customers = customers
        self.catalog = catalog
        self.metrics = metrics
        self.clock = clock
        self.close_grace = close_grace
        self.batch_size = batch_size
        # One close at a time in this process (SQLite has no advisory lock; PostgreSQL also
        # takes one per batch so replicas queue behind each other).
        self._close_lock = threading.Lock()
        self._known_closed: set[str] = set()
        # Called with a new credit's id once it is stored: applies it in Stripe (wiring).
        self.after_grant: Callable[[int], None] | None = None

    # -- closing ----------------------------------------------------------------------------

    def closes_at(self, period: BillingPeriod) -> datetime:
        return period.end + self.close_grace

    def close_period(self, period: BillingPeriod) -> PeriodClose:
        now = self.clock()
        if period.is_open(now=now, grace=self.close_grace):
            raise InvalidRequest(
                "period",
                f"{period.key} is still open: it closes at {self.closes_at(period).isoformat()}",
            )

        def build(org: OrgToInvoice) -> InvoiceDraft:
            return build_invoice(
                plan=self.catalog.plan_or_default(org.plan_code),
                period_key=period.key,
                used_minutes=org.used_minutes,
                credits=org.credits,
            )

        created = scanned = 0
        with self._close_lock:
            after: str | None = None
            while True:
                batch = self.store.close_batch(
                    period,
                    credits_granted_before=self.closes_at(period),
                    after_org_id=after,
                    limit=self.batch_size,
                    now=now,
                    build=build,
                )
                created += batch.created
                scanned += batch.scanned
                if batch.created:
                    self.metrics.invoices_created.inc(batch.created)
                if batch.scanned < self.batch_size:
                    break
                after = batch.last_org_id
            total = self.store.mark_period_closed(period, now=now)
            self._known_closed.add(period.key)
        log.info(
            "period closed",
            extra={"period": period.key, "invoices_created": created, "invoices_total": total},
        )
        return PeriodClose(period=period, orgs=scanned, created=created, total=total)

    def close_due_period(self) -> PeriodClose | None:
        """The housekeeping check: close last month once its grace has passed. Costs one
        primary-key read per round until the period is known closed, then nothing."""
        now = self.clock()
        previous = period_containing(now).previous()
        if previous.is_open(now=now, grace=self.close_grace):
            return None
        if previous.key in self._known_closed:
            return None
        if self.store.is_period_closed(previous.key):
            self._known_closed.add(previous.key)
            return None
        return self.close_period(previous)

    # -- reads ------------------------------------------------------------------------------

    def list_invoices(
        self, org_id: str, *, period_key: str | None = None, limit: int = 24
    ) -> list[StoredInvoice]:
        if period_key is not None:
            period_from_field(period_key)
        self.customers.require(org_id)
        return self.store.invoices_for_org(org_id, period_key=period_key, limit=limit)

    def stripe_invoices(self, org_id: str, *, limit: int = 24) -> list[StripeInvoice]:
        """Stripe's invoices for the org as its invoice events described them."""
        return self.store.stripe_invoices_of(org_id, limit=limit)

    # -- credits ----------------------------------------------------------------------------

    def grant_credit(
        self,
        *,
        org_id: str,
        amount_cents: int,
        reason: str,
        granted_by: str,
        idempotency_key: str | None = None,
    ) -> tuple[CreditRecord, bool]:
        self.customers.require(org_id)
        credit, created = self.store.grant_credit(
            org_id=org_id,
            amount_cents=amount_cents,
            reason=reason,
            granted_by=granted_by,
            now=self.clock(),
            idempotency_key=idempotency_key,
        )
        if not created and (credit.amount_cents, credit.reason) != (amount_cents, reason):
            raise Conflict(
                "Idempotency-Key",
                f"was already used for credit {credit.id} with a different amount or reason",
            )
        if created:
            log.info("credit granted", extra={"credit_id": credit.id, "amount_cents": amount_cents})
        if created and self.after_grant is not None:
            try:
                self.after_grant(credit.id)
            except Exception as exc:  # stored and pending: the retry job sends it
                log.warning("credit not applied in Stripe yet", extra={
                    "credit_id": credit.id, "reason": str(exc)[:200]})
            credit = self.store.credit(org_id, credit.id) or credit
        return credit, created

    def list_credits(self, org_id: str) -> list[CreditRecord]:
        self.customers.require(org_id)
        return self.store.credits_for_org(org_id)
