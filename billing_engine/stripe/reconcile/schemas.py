"""A reconciliation report as the API shows it."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from billing_core.http import ResponseModel, Timestamp


class MismatchOut(ResponseModel):
    kind: str = Field(description="missing_at_stripe, missing_here, amount_differs, "
                      "usage_not_reported or usage_over_reported")
    org_id: str | None
    stripe_customer_id: str | None
    our_invoice_id: int | None
    stripe_invoice_ids: list[str]
    ours: int | None = Field(description="Cents, or minutes for the usage kinds")
    stripe: int | None
    detail: str


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


class LastReportOut(ReportOut):
    ran: Literal[True]


class NoReportOut(ResponseModel):
    ran: Literal[False]
    mismatch_count: Literal[0]
