"""Use cases of invoices and credits: close a period, preview the open one, grant credits.

A period closes once it has ended and PERIOD_CLOSE_GRACE_SECONDS have passed (after that no late
heartbeat is accepted for it, so its usage is final). Closing invoices every org that existed
before the period ended, in batches of one transaction each; closing again writes nothing new.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from billing_core.periods import BillingPeriod, parse_period_key, period_containing
from billing_core.plans import Plan
from billing_core.quota import hours
from billing_engine.customers.service import BillingService, NotFound, period_json
from billing_engine.invoicing.rules import (
    CURRENCY,
    InvoiceDraft,
    InvoiceLine,
    build_invoice,
)
from billing_engine.invoicing.store import (
    CreditRecord,
    InvoiceStore,
    OrgToInvoice,
    StoredInvoice,
)

log = logging.getLogger("billing_engine.invoices")
CLOSE_BATCH_SIZE = 500
PREVIEW = "preview"


class InvalidInvoiceRequest(ValueError):
    """A request the use case refuses; names the field it is about."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class CreditConflict(InvalidInvoiceRequest):
    """An idempotency key reused for a different credit."""


def parse_period(value: str, *, field: str = "period") -> BillingPeriod:
    try:
        period = parse_period_key(value)
    except ValueError:
        raise InvalidInvoiceRequest(field, f"must look like YYYY-MM, got {value!r}") from None
    if period.key != value:
        raise InvalidInvoiceRequest(field, f"must look like YYYY-MM, got {value!r}")
    return period


def line_json(line: InvoiceLine) -> dict[str, Any]:
    return {
        "kind": line.kind.value,
        "description": line.description,
        "quantity": line.quantity,
        "unit": line.unit,
        "unit_amount_cents": line.unit_amount_cents,
        "amount_cents": line.amount_cents,
        "minutes": line.minutes,
        "credit_id": line.credit_id,
    }


def invoice_json(
    draft: InvoiceDraft,
    *,
    org_id: str,
    period: BillingPeriod,
    status: str,
    invoice_id: int | None = None,
    stripe_invoice_id: str | None = None,
    closed_at: datetime | None = None,
) -> dict[str, Any]:
    """One shape for the preview and the stored invoice, so they compare field by field."""
    return {
        "id": invoice_id,
        "org_id": org_id,
        "period": period_json(period),
        "status": status,
        "plan": draft.plan_code,
        "currency": CURRENCY,
        "usage": {
            "included_minutes": draft.included_minutes,
            "used_minutes": draft.used_minutes,
            "overage_minutes": draft.overage_minutes,
            "included_hours": hours(draft.included_minutes),
            "used_hours": hours(draft.used_minutes),
            "overage_hours": hours(draft.overage_minutes),
        },
        "lines": [line_json(line) for line in draft.lines],
        "subtotal_cents": draft.subtotal_cents,
        "credits_applied_cents": draft.credits_cents,
        "total_cents": draft.total_cents,
        "stripe_invoice_id": stripe_invoice_id,
        "closed_at": None if closed_at is None else closed_at.isoformat(),
    }


def stored_invoice_json(invoice: StoredInvoice) -> dict[str, Any]:
    return invoice_json(
        invoice.draft,
        org_id=invoice.org_id,
        period=BillingPeriod(start=invoice.period_start, end=invoice.period_end),
        status=invoice.status,
        invoice_id=invoice.id,
        stripe_invoice_id=invoice.stripe_invoice_id,
        closed_at=invoice.closed_at,
    )


def credit_json(credit: CreditRecord) -> dict[str, Any]:
    return {
        "id": credit.id,
        "org_id": credit.org_id,
        "amount_cents": credit.amount_cents,
        "remaining_cents": credit.remaining_cents,
        "applied_cents": credit.amount_cents - credit.remaining_cents,
        "reason": credit.reason,
        "granted_by": credit.granted_by,
        "granted_at": credit.granted_at.isoformat(),
        "applications": [
            {"invoice_id": a.invoice_id, "period": a.period, "amount_cents": a.amount_cents}
            for a in credit.applications
        ],
    }


class InvoiceService:
    def __init__(
        self,
        *,
        store: InvoiceStore,
        service: BillingService,
        close_grace: timedelta,
        batch_size: int = CLOSE_BATCH_SIZE,
    ) -> None:
        self.store = store
        self.service = service
        self.metrics = service.metrics
        self.clock = service.clock
        self.close_grace = close_grace
        self.batch_size = batch_size
        # One close at a time in this process (SQLite has no advisory lock; PostgreSQL also
        # takes one per batch so replicas queue behind each other).
        self._close_lock = threading.Lock()
        self._known_closed: set[str] = set()

    def _plan(self, code: str) -> Plan:
        catalog = self.service.catalog
        return catalog.get(code) or catalog.plans[catalog.default_plan]

    # -- closing ----------------------------------------------------------------------------

    def closes_at(self, period: BillingPeriod) -> datetime:
        return period.end + self.close_grace

    def close_period(self, period: BillingPeriod) -> dict[str, Any]:
        now = self.clock()
        if period.is_open(now=now, grace=self.close_grace):
            raise InvalidInvoiceRequest(
                "period",
                f"{period.key} is still open: it closes at {self.closes_at(period).isoformat()}",
            )

        def build(org: OrgToInvoice) -> InvoiceDraft:
            return build_invoice(
                plan=self._plan(org.plan_code),
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
        return {
            "period": period_json(period),
            "orgs": scanned,
            "invoices_created": created,
            "already_invoiced": scanned - created,
            "invoices_total": total,
        }

    def close_due_period(self) -> dict[str, Any] | None:
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

    def preview(self, org_id: str) -> dict[str, Any]:
        """The open period's invoice as it would be if the period closed now: this moment's usage
        and credit balance, through the same function that writes the invoice at close."""
        period = period_containing(self.clock())
        org, used_minutes, available = self.store.preview_inputs(org_id, period)
        if org is None:
            raise NotFound("org_id", f"no org with id {org_id!r}")
        draft = build_invoice(
            plan=self.service.plan_for(org),
            period_key=period.key,
            used_minutes=used_minutes,
            credits=available,
        )
        return invoice_json(draft, org_id=org.id, period=period, status=PREVIEW)

    def list_invoices(
        self, org_id: str, *, period_key: str | None = None, limit: int = 24
    ) -> dict[str, Any]:
        if period_key is not None:
            parse_period(period_key)
        self.service.require_org(org_id)
        found = self.store.invoices_for_org(org_id, period_key=period_key, limit=limit)
        return {"org_id": org_id, "invoices": [stored_invoice_json(i) for i in found]}

    # -- credits ----------------------------------------------------------------------------

    def grant_credit(
        self,
        *,
        org_id: str,
        amount_cents: int,
        reason: str,
        granted_by: str,
        idempotency_key: str | None = None,
    ) -> tuple[dict[str, Any], bool]:
        self.service.require_org(org_id)
        credit, created = self.store.grant_credit(
            org_id=org_id,
            amount_cents=amount_cents,
            reason=reason,
            granted_by=granted_by,
            now=self.clock(),
            idempotency_key=idempotency_key,
        )
        if not created and (credit.amount_cents, credit.reason) != (amount_cents, reason):
            raise CreditConflict(
                "Idempotency-Key",
                f"was already used for credit {credit.id} with a different amount or reason",
            )
        if created:
            log.info("credit granted", extra={"credit_id": credit.id, "amount_cents": amount_cents})
        return credit_json(credit), created

    def list_credits(self, org_id: str) -> dict[str, Any]:
        self.service.require_org(org_id)
        found = self.store.credits_for_org(org_id)
        return {
            "org_id": org_id,
            "currency": CURRENCY,
            "balance_cents": sum(c.remaining_cents for c in found),
            "credits": [credit_json(c) for c in found],
        }


def close_period_from_cli(settings: Any, period_key: str) -> dict[str, Any]:
    """`python -m billing_engine close-period --period YYYY-MM`: the same close the scheduler
    and the admin endpoint run, recorded in the audit log under the actor name "cli"."""
    from billing_core.catalogue import load_plans
    from billing_engine.audit.log import AuditLog
    from billing_engine.audit.store import AuditStore
    from billing_engine.db import Repository, create_database
    from billing_engine.operability.metrics import EngineMetrics
    from billing_engine.usage.rules import MeteringPolicy

    period = parse_period(period_key)
    database = create_database(settings.database_url, pool_size=1)
    metrics = EngineMetrics()
    try:
        service = BillingService(
            repository=Repository(database),
            catalog=load_plans(settings.plans_file),
            policy=MeteringPolicy(
                clock_skew=settings.heartbeat_clock_skew, close_grace=settings.period_close_grace
            ),
            metrics=metrics,
        )
        invoices = InvoiceService(
            store=InvoiceStore(database), service=service, close_grace=settings.period_close_grace
        )
        audit = AuditLog(
            AuditStore(database), metrics=metrics, clock=service.clock,
            secrets=settings.secret_values(),
        )
        status = 200
        try:
            result = invoices.close_period(period)
        except InvalidInvoiceRequest:
            status = 422
            raise
        finally:
            audit.record(
                actor="cli",
                method="CLI",
                path="close-period",
                path_params={},
                summary={"query": {"period": period_key}},
                status=status,
                request_id=None,
            )
        return result
    finally:
        database.dispose()
