"""Payments, as the engine understands them: pure rules.

How a payment attempt is labelled for the metrics (a bounded method and failure family) and what
an attempt and a refund hold, in integer cents. Time only ever comes in as a value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class PaymentOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"


PAYMENT_METHODS = ("card", "sepa_debit", "ach_debit", "other")
FAILURE_REASONS = (
    "card_declined",
    "insufficient_funds",
    "expired_card",
    "processing_error",
    "other",
)
_INSUFFICIENT = frozenset(
    {"insufficient_funds", "card_velocity_exceeded", "withdrawal_count_limit_exceeded"}
)
_PROCESSING = frozenset({"processing_error", "issuer_not_available", "try_again_later"})
_DECLINED = frozenset(
    {
        "card_declined",
        "generic_decline",
        "do_not_honor",
        "fraudulent",
        "lost_card",
        "stolen_card",
        "incorrect_cvc",
        "incorrect_number",
        "pickup_card",
        "restricted_card",
        "transaction_not_allowed",
        "invalid_account",
    }
)

_METHOD_ALIASES: Mapping[str, str] = {
    "card": "card",
    "card_present": "card",
    "sepa_debit": "sepa_debit",
    "us_bank_account": "ach_debit",  # Stripe's ACH Direct Debit payment method type
    "ach_debit": "ach_debit",
}


def method_label(payment_method_type: str | None) -> str:
    """A bounded label for the metrics: card, sepa_debit, ach_debit or other."""
    return _METHOD_ALIASES.get(payment_method_type or "", "other")


def failure_family(*codes: str | None) -> str:
    """Group Stripe's decline and error codes into the few families the alerts care about.

    `codes` are the decline code first (most specific), then the error code."""
    present = [c for c in codes if c]
    for code in present:
        if code in _INSUFFICIENT:
            return "insufficient_funds"
        if code == "expired_card":
            return "expired_card"
        if code in _PROCESSING:
            return "processing_error"
    if any(c in _DECLINED for c in present):
        return "card_declined"
    return "other"


@dataclass(frozen=True)
class PaymentAttempt:
    """One attempt to collect an invoice, in integer cents."""

    event_id: str
    org_id: str
    customer_id: str | None
    invoice_id: str | None
    charge_id: str | None
    payment_intent_id: str | None
    amount_cents: int
    currency: str
    outcome: PaymentOutcome
    method: str
    failure_code: str | None
    failure_reason: str | None  # the family, for failed attempts
    failure_message: str | None
    attempt_number: int | None
    attempted_at: datetime


@dataclass(frozen=True)
class Refund:
    """Money given back on one charge. `refund_key` is Stripe's refund id when the event lists
    the refunds, else the charge and its cumulative refunded amount."""

    refund_key: str
    event_id: str
    org_id: str
    charge_id: str
    payment_intent_id: str | None
    amount_cents: int
    currency: str
    reason: str | None
    refunded_at: datetime
