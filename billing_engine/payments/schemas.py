"""Payments over HTTP: an org's payment attempts and refunds with their totals."""

from __future__ import annotations

from pydantic import Field

from billing_core.http import ResponseModel, Timestamp


class PaymentOut(ResponseModel):
    attempted_at: Timestamp | None
    amount_cents: int
    currency: str
    outcome: str = Field(description="succeeded or failed")
    method: str = Field(description="card, sepa_debit, ach_debit or other")
    failure_reason: str | None = Field(description="The failure family, for failed attempts")
    failure_code: str | None
    failure_message: str | None
    refunded_cents: int
    attempt_number: int | None
    invoice_id: str | None
    charge_id: str | None
    payment_intent_id: str | None
    stripe_event_id: str


class RefundOut(ResponseModel):
    refunded_at: Timestamp | None
    amount_cents: int
    currency: str
    reason: str | None
    charge_id: str
    refund: str = Field(description="Stripe's refund id, or the charge and its refunded total")
    stripe_event_id: str


class PaymentTotalsOut(ResponseModel):
    attempts: int
    succeeded: int
    failed: int
    succeeded_cents: int
    refunded_cents: int


class PaymentsOut(ResponseModel):
    org_id: str
    payments: list[PaymentOut]
    refunds: list[RefundOut]
    totals: PaymentTotalsOut
    retention: str
    as_of: Timestamp
