"""A reconciliation report as the API shows it, and the stored runs with their mismatches."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from billing_core.http import ResponseModel, Timestamp

KINDS = ("missing_at_stripe, missing_here, amount_differs, usage_not_reported, "
         "usage_over_reported, usage_not_aggregated or usage_over_aggregated "
         "(docs/stripe.md#reconciliation)")


class MismatchOut(ResponseModel):
    kind: str = Field(description=KINDS)
    org_id: str | None
    stripe_customer_id: str | None
    our_invoice_id: int | None
    stripe_invoice_ids: list[str]
    ours: int | None = Field(description="Cents, or minutes for the usage kinds")
    stripe: int | None
    detail: str
    billed_minutes: int | None = Field(default=None, description="On our invoice")
    sent_minutes: int | None = Field(
        default=None, description="Stripe accepted from the usage outbox for the period's hours")
    stripe_minutes: int | None = Field(
        default=None, description="Stripe's meter aggregated for the customer over the period "
        "(null when not compared)")
    our_cents: int | None = Field(default=None, description="Our invoice total, after credits")
    stripe_cents: int | None = Field(
        default=None, description="What Stripe asks the customer to pay (amount_due, after "
        "the customer's balance)")


class ReportOut(ResponseModel):
    period: str
    provider: str = Field(description="stripe, or simulated without STRIPE_SECRET_KEY")
    simulated: bool
    ran_at: Timestamp
    our_invoices: int
    our_invoices_not_linked: int
    stripe_invoices: int
    mismatch_count: int
    mismatches: list[MismatchOut]
    note: str | None
    trigger: str = Field(default="manual", description="manual, daily or period_close")
    aggregated_checked: bool = Field(
        default=False, description="Whether Stripe's meter summaries were compared (false "
        "when no meter in Stripe has the configured event name)")


class LastReportOut(ReportOut):
    ran: Literal[True]


class NoReportOut(ResponseModel):
    ran: Literal[False]
    mismatch_count: Literal[0]


class RunOut(ResponseModel):
    id: int
    period: str
    ran_at: Timestamp
    trigger: str = Field(description="manual, daily or period_close")
    provider: str
    mismatch_count: int
    by_kind: dict[str, int] = Field(description="Mismatches of each kind")


class RunsOut(ResponseModel):
    runs: list[RunOut] = Field(description="Newest first")


class RunDetailOut(RunOut):
    our_invoices: int
    stripe_invoices: int
    aggregated_checked: bool
    mismatches: list[MismatchOut]
