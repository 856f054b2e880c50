"""Invoices and credits over HTTP: the credit grant body, an invoice (stored or previewed), a
credit with where it went, and the result of closing a period."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from billing_core.http import ResponseModel, Storable, Timestamp
from billing_core.periods import BillingPeriod
from billing_core.quota import hours
from billing_core.schemas import PeriodOut, period_out
from billing_engine.customers.schemas import OrgId
from billing_engine.invoicing.rules import CURRENCY, InvoiceDraft, InvoiceLine, StripeInvoice
from billing_engine.invoicing.service import PeriodClose
from billing_engine.invoicing.store import CreditRecord, StoredInvoice

# A guard against a slipped digit; larger corrections go through finance and Stripe.
MAX_CREDIT_CENTS = 10_000_000
PREVIEW = "preview"

Amount = Annotated[int, Field(strict=True, gt=0, le=MAX_CREDIT_CENTS, description="Cents, > 0")]
Reason = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=500), Storable
]


class CreditForOrg(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_cents: Amount
    reason: Reason


class CreditGrant(CreditForOrg):
    org_id: OrgId


class LineOut(ResponseModel):
    kind: str = Field(description="base_fee, overage or credit (a negative amount)")
    description: str
    quantity: float
    unit: str
    unit_amount_cents: int
    amount_cents: int
    minutes: int | None = Field(description="Overage lines: the exact minutes priced")
    credit_id: int | None


class InvoiceUsageOut(ResponseModel):
    included_minutes: int
    used_minutes: int
    overage_minutes: int
    included_hours: float
    used_hours: float
    overage_hours: float


class StripeInvoiceOut(ResponseModel):
    """Stripe's invoice as its last invoice event (finalized, paid, payment_failed, voided)
    described it: what the customer was billed and can open."""

    id: str = Field(description="Stripe's invoice id (in_...)")
    number: str | None = Field(description="The number printed on it, which customers quote")
    status: str | None = Field(description="Stripe's status: draft, open, paid, void, ...")
    currency: str | None
    amount_due_cents: int | None
    amount_paid_cents: int | None
    total_cents: int | None
    hosted_invoice_url: str | None = Field(description="The page the customer pays and reads")
    period: str | None = Field(description="Our billing period it bills (YYYY-MM), if any")
    updated_by_event_at: Timestamp = Field(description="When Stripe created the latest event")


class InvoiceOut(ResponseModel):
    """One shape for the preview and the stored invoice, so they compare field by field."""

    id: int | None = Field(description="Null for the open period's preview")
    org_id: str
    period: PeriodOut
    status: str = Field(description="preview, finalized, paid, payment_failed or void")
    plan: str
    currency: str
    usage: InvoiceUsageOut
    lines: list[LineOut]
    subtotal_cents: int
    credits_applied_cents: int
    total_cents: int
    stripe_invoice_id: str | None
    closed_at: Timestamp | None
    stripe_invoice: StripeInvoiceOut | None = Field(
        default=None, description="Stripe's invoice for this period, once an event named it"
    )


class InvoicesOut(ResponseModel):
    org_id: str
    invoices: list[InvoiceOut]
    stripe_invoices: list[StripeInvoiceOut] = Field(
        default_factory=list, description="Stripe's invoices for the org, newest event first"
    )


class CreditApplicationOut(ResponseModel):
    invoice_id: int
    period: str
    amount_cents: int


class CreditOut(ResponseModel):
    id: int
    org_id: str
    amount_cents: int
    remaining_cents: int
    applied_cents: int
    reason: str
    granted_by: str = Field(description="The admin key's name (or cli)")
    granted_at: Timestamp
    applications: list[CreditApplicationOut]
    stripe_status: str = Field(description="pending (not applied in Stripe yet: retried, or "
                               "waiting for the org's Stripe customer), sent, failed (Stripe "
                               "refused it; see stripe_last_error) or legacy (granted before "
                               "credits went to Stripe)")
    stripe_balance_transaction_id: str | None = Field(
        description="The customer balance transaction (cbtxn_...) holding the credit in Stripe")
    stripe_last_error: str | None


class CreditsOut(ResponseModel):
    org_id: str
    currency: str
    balance_cents: int = Field(description="What is left on every credit together")
    credits: list[CreditOut]


class PeriodCloseOut(ResponseModel):
    period: PeriodOut
    orgs: int = Field(description="Orgs that existed before the period ended")
    invoices_created: int
    already_invoiced: int
    invoices_total: int


def line_out(line: InvoiceLine) -> LineOut:
    return LineOut(
        kind=line.kind.value,
        description=line.description,
        quantity=line.quantity,
        unit=line.unit,
        unit_amount_cents=line.unit_amount_cents,
        amount_cents=line.amount_cents,
        minutes=line.minutes,
        credit_id=line.credit_id,
    )


def invoice_out(
    draft: InvoiceDraft,
    *,
    org_id: str,
    period: BillingPeriod,
    status: str,
    invoice_id: int | None = None,
    stripe_invoice_id: str | None = None,
    closed_at: datetime | None = None,
) -> InvoiceOut:
    return InvoiceOut(
        id=invoice_id,
        org_id=org_id,
        period=period_out(period),
        status=status,
        plan=draft.plan_code,
        currency=CURRENCY,
        usage=InvoiceUsageOut(
            included_minutes=draft.included_minutes,
            used_minutes=draft.used_minutes,
            overage_minutes=draft.overage_minutes,
            included_hours=hours(draft.included_minutes),
            used_hours=hours(draft.used_minutes),
            overage_hours=hours(draft.overage_minutes),
        ),
        lines=[line_out(line) for line in draft.lines],
        subtotal_cents=draft.subtotal_cents,
        credits_applied_cents=draft.credits_cents,
        total_cents=draft.total_cents,
        stripe_invoice_id=stripe_invoice_id,
        closed_at=closed_at,
    )


def stored_invoice_out(invoice: StoredInvoice) -> InvoiceOut:
    return invoice_out(
        invoice.draft,
        org_id=invoice.org_id,
        period=BillingPeriod(start=invoice.period_start, end=invoice.period_end),
        status=invoice.status,
        invoice_id=invoice.id,
        stripe_invoice_id=invoice.stripe_invoice_id,
        closed_at=invoice.closed_at,
    )


def credit_out(credit: CreditRecord) -> CreditOut:
    return CreditOut(
        id=credit.id,
        org_id=credit.org_id,
        amount_cents=credit.amount_cents,
        remaining_cents=credit.remaining_cents,
        applied_cents=credit.amount_cents - credit.remaining_cents,
        reason=credit.reason,
        granted_by=credit.granted_by,
        granted_at=credit.granted_at,
        applications=[
            CreditApplicationOut(invoice_id=a.invoice_id, period=a.period,
                                 amount_cents=a.amount_cents)
            for a in credit.applications
        ],
        stripe_status=credit.stripe_status,
        stripe_balance_transaction_id=credit.stripe_balance_transaction_id,
        stripe_last_error=credit.stripe_last_error,
    )


def credits_out(org_id: str, found: list[CreditRecord]) -> CreditsOut:
    return CreditsOut(
        org_id=org_id,
        currency=CURRENCY,
        balance_cents=sum(c.remaining_cents for c in found),
        credits=[credit_out(c) for c in found],
    )


def period_close_out(result: PeriodClose) -> PeriodCloseOut:
    return PeriodCloseOut(
        period=period_out(result.period),
        orgs=result.orgs,
        invoices_created=result.created,
        already_invoiced=result.orgs - result.created,
        invoices_total=result.total,
    )


def stripe_invoice_out(invoice: StripeInvoice) -> StripeInvoiceOut:
    return StripeInvoiceOut(
        id=invoice.stripe_invoice_id,
        number=invoice.number,
        status=invoice.status,
        currency=invoice.currency,
        amount_due_cents=invoice.amount_due_cents,
        amount_paid_cents=invoice.amount_paid_cents,
        total_cents=invoice.total_cents,
        hosted_invoice_url=invoice.hosted_invoice_url,
        period=invoice.period,
        updated_by_event_at=invoice.event_created,
    )


def invoices_out(
    org_id: str, found: list[StoredInvoice], stripe_found: list[StripeInvoice]
) -> InvoicesOut:
    """Our invoices, each beside Stripe's: the one linked by id, else the newest naming its
    period (our invoice may have closed after Stripe's event)."""
    by_id = {s.stripe_invoice_id: s for s in stripe_found}
    by_period: dict[str, StripeInvoice] = {}
    for s in stripe_found:  # newest event first: keep the first per period
        if s.period is not None:
            by_period.setdefault(s.period, s)
    invoices = []
    for invoice in found:
        out = stored_invoice_out(invoice)
        match = by_id.get(invoice.stripe_invoice_id or "") or by_period.get(invoice.period)
        if match is not None:
            out = out.model_copy(update={"stripe_invoice": stripe_invoice_out(match)})
        invoices.append(out)
    return InvoicesOut(
        org_id=org_id,
        invoices=invoices,
        stripe_invoices=[stripe_invoice_out(s) for s in stripe_found],
    )
