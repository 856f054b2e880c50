"""Invoice lines for one org and one period, in integer cents.

The same function builds the open period's preview and the invoice written when the period
closes, so the two cannot disagree. Base fee and overage come from `compute_quota`, the numbers
the billing view shows; credits are then applied oldest first, never taking the total below zero.
What a credit does not cover stays on it for the next invoice.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from billing_core.plans import Plan
from billing_core.quota import compute_quota, hours

CURRENCY = "usd"
MAX_CREDIT_REASON_IN_LINE = 200
_PERIOD = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")


class LineKind(StrEnum):
    BASE_FEE = "base_fee"
    OVERAGE = "overage"
    CREDIT = "credit"


@dataclass(frozen=True)
class AvailableCredit:
    """A credit with money left on it, as the invoice sees it."""

    credit_id: int
    remaining_cents: int
    reason: str
    granted_at: datetime


@dataclass(frozen=True)
class InvoiceLine:
    kind: LineKind
    description: str
    unit_amount_cents: int
    amount_cents: int
    minutes: int | None = None  # overage: the exact minutes priced
    credit_id: int | None = None

    @property
    def quantity(self) -> float:
        """For display: 1 month, overage hours to the hundredth, or 1 credit."""
        if self.kind is LineKind.OVERAGE:
            return hours(self.minutes or 0)
        return 1

    @property
    def unit(self) -> str:
        return {LineKind.BASE_FEE: "month", LineKind.OVERAGE: "hour", LineKind.CREDIT: "credit"}[
            self.kind
        ]


@dataclass(frozen=True)
class InvoiceDraft:
    plan_code: str
    included_minutes: int
    used_minutes: int
    overage_minutes: int
    lines: tuple[InvoiceLine, ...]

    @property
    def subtotal_cents(self) -> int:
        return sum(line.amount_cents for line in self.lines if line.kind is not LineKind.CREDIT)

    @property
    def credits_cents(self) -> int:
        """Credit applied to this invoice, as a positive number."""
        return -sum(line.amount_cents for line in self.lines if line.kind is LineKind.CREDIT)

    @property
    def total_cents(self) -> int:
        return self.subtotal_cents - self.credits_cents

    @property
    def credits_applied(self) -> tuple[tuple[int, int], ...]:
        """(credit id, cents taken from it) for each credit this invoice consumes."""
        return tuple(
            (line.credit_id, -line.amount_cents)
            for line in self.lines
            if line.kind is LineKind.CREDIT and line.credit_id is not None
        )


def apply_credits(
    amount_due_cents: int, credits: Sequence[AvailableCredit]
) -> tuple[tuple[int, int], ...]:
    """Take from credits, oldest first, until the amount due is covered: (credit id, cents)."""
    applied: list[tuple[int, int]] = []
    due = amount_due_cents
    for credit in sorted(credits, key=lambda c: (c.granted_at, c.credit_id)):
        if due <= 0:
            break
        take = min(due, credit.remaining_cents)
        if take > 0:
            applied.append((credit.credit_id, take))
            due -= take
    return tuple(applied)


def _short(reason: str) -> str:
    reason = " ".join(reason.split())
    if len(reason) <= MAX_CREDIT_REASON_IN_LINE:
        return reason
    return reason[: MAX_CREDIT_REASON_IN_LINE - 3] + "..."


def build_invoice(
    *, plan: Plan, period_key: str, used_minutes: int, credits: Sequence[AvailableCredit] = ()
) -> InvoiceDraft:
    """The lines of one org's invoice: base fee, overage (when the plan charges it), credits."""
    quota = compute_quota(plan, used_minutes=used_minutes)
    lines = [
        InvoiceLine(
            kind=LineKind.BASE_FEE,
            description=f"{plan.name} plan, {period_key}",
            unit_amount_cents=quota.base_fee_cents,
            amount_cents=quota.base_fee_cents,
        )
    ]
    if plan.overage_allowed and quota.overage_minutes > 0:
        lines.append(
            InvoiceLine(
                kind=LineKind.OVERAGE,
                description=(
                    f"Overage: {hours(quota.overage_minutes):.2f} h beyond "
                    f"{plan.included_hours} h included, at {plan.overage_cents_per_hour} "
                    "cents per hour"
                ),
                unit_amount_cents=plan.overage_cents_per_hour,
                amount_cents=quota.estimated_overage_cents,
                minutes=quota.overage_minutes,
            )
        )
    subtotal = sum(line.amount_cents for line in lines)
    by_id = {c.credit_id: c for c in credits}
    for credit_id, cents in apply_credits(subtotal, credits):
        lines.append(
            InvoiceLine(
                kind=LineKind.CREDIT,
                description=f"Credit #{credit_id}: {_short(by_id[credit_id].reason)}",
                unit_amount_cents=-cents,
                amount_cents=-cents,
                credit_id=credit_id,
            )
        )
    return InvoiceDraft(
        plan_code=plan.code,
        included_minutes=quota.included_minutes,
        used_minutes=quota.used_minutes,
        overage_minutes=quota.overage_minutes,
        lines=tuple(lines),
    )


# Our invoice status after each Stripe invoice event; invoice.finalized leaves ours as it is.
STATUS_AFTER_STRIPE_EVENT = {
    "invoice.paid": "paid",
    "invoice.payment_failed": "payment_failed",
    "invoice.voided": "void",
}


@dataclass(frozen=True)
class StripeInvoice:
    """Stripe's invoice as one of its invoice events described it, in integer cents.

    `period` is the billing period of ours it belongs to ("YYYY-MM"), None when it names none."""

    stripe_invoice_id: str
    org_id: str
    customer_id: str | None
    number: str | None
    status: str | None
    currency: str | None
    amount_due_cents: int | None
    amount_paid_cents: int | None
    total_cents: int | None
    hosted_invoice_url: str | None
    period: str | None
    event_created: datetime


def stripe_invoice_period(
    *, metadata_period: str | None, period_start: datetime | None, period_end: datetime | None
) -> str | None:
    """Which of our monthly periods a Stripe invoice bills.

    Our `period` in the invoice's metadata wins. Otherwise a subscription invoice billed in
    arrears covers [period_start, period_end), the month it bills being the one it starts in; an
    invoice with an empty period (a subscription's first, billed in advance) names no month."""
    if metadata_period is not None and _PERIOD.fullmatch(metadata_period):
        return metadata_period
    if period_start is None or period_end is None or period_end <= period_start:
        return None
    return f"{period_start.year:04d}-{period_start.month:02d}"
