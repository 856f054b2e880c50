"""Payment attempts and refunds from Stripe's charges, payment intents and invoices.

An attempt is a charge. `charge.succeeded` and `charge.failed` carry it whole (method in
`payment_method_details.type`, decline in `outcome.reason`, `failure_code`);
`payment_intent.payment_failed` carries the intent with its `last_payment_error` and the id of its
latest charge. `invoice.paid` and `invoice.payment_failed` carry neither (since 2025-03-31.basil an
invoice names no charge or intent, and webhooks never include `payments`), so for them the charge
is fetched through the Stripe client. Each source names the same charge id, so the store records
an attempt once and lets a later source fill in what an earlier one lacked.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billing_core.http import storable
from billing_engine.invoicing.rules import StripeInvoice, stripe_invoice_period
from billing_engine.payments.rules import (
    PaymentAttempt,
    PaymentOutcome,
    Refund,
    failure_family,
    method_label,
)
from billing_engine.stripe.webhooks.fields import StripeFields
from billing_engine.stripe.webhooks.payloads import Json, PayloadError

CHARGE_EVENTS = ("charge.succeeded", "charge.failed")
INTENT_EVENTS = ("payment_intent.payment_failed",)
INVOICE_PAYMENT_EVENTS = ("invoice.paid", "invoice.payment_failed")
INVOICE_EVENTS = ("invoice.finalized", *INVOICE_PAYMENT_EVENTS, "invoice.voided")


@dataclass(frozen=True)
class FetchedPayment:
    """What the Stripe client found for one invoice: its newest payment's intent and charge
    (either may be missing: a charge paid outside an intent, an intent that never charged)."""

    payment_intent: Json | None
    charge: Json | None


def _currency(obj: StripeFields) -> str:
    currency = obj.text("currency")
    if currency is None or len(currency) != 3:
        raise PayloadError("data.object.currency", "must be a three-letter currency code")
    return currency.lower()


def _amount(obj: StripeFields, *paths: str) -> int:
    for path in paths:
        value = obj.integer(path)
        if value is not None:
            return value
    raise PayloadError(f"data.object.{paths[0]}", "must be an amount in the currency's minor unit")


def _clip(value: Any, size: int) -> str | None:
    return str(value)[:size] if isinstance(value, str) and value else None


@dataclass(frozen=True)
class _Failure:
    decline: str | None
    code: str | None
    message: str | None


def _charge_failure(charge: StripeFields) -> _Failure:
    return _Failure(
        decline=charge.text("outcome.reason"),
        code=charge.text("failure_code"),
        message=charge.text("failure_message"),
    )


def _intent_failure(intent: StripeFields) -> _Failure:
    return _Failure(
        decline=intent.text("last_payment_error.decline_code"),
        code=intent.text("last_payment_error.code"),
        message=intent.text("last_payment_error.message"),
    )


def _attempt(
    *,
    event_id: str,
    org_id: str,
    customer_id: str | None,
    invoice_id: str | None,
    charge_id: str | None,
    intent_id: str | None,
    amount: int,
    currency: str,
    outcome: PaymentOutcome,
    method_type: str | None,
    failure: _Failure,
    attempt_number: int | None,
    at: datetime,
) -> PaymentAttempt:
    failed = outcome is PaymentOutcome.FAILED
    code = failure.decline or failure.code
    return PaymentAttempt(
        event_id=event_id,
        org_id=org_id,
        customer_id=customer_id,
        invoice_id=invoice_id,
        charge_id=charge_id,
        payment_intent_id=intent_id,
        amount_cents=amount,
        currency=currency,
        outcome=outcome,
        method=method_label(method_type),
        failure_code=_clip(code, 64) if failed else None,
        failure_reason=failure_family(failure.decline, failure.code) if failed else None,
        failure_message=_clip(failure.message, 500) if failed else None,
        attempt_number=attempt_number,
        attempted_at=at,
    )


def charge_outcome(charge: Json) -> PaymentOutcome | None:
    """succeeded or failed; None for a charge still pending (a bank debit in flight)."""
    status = StripeFields("charge", charge).text("status")
    if status == "succeeded":
        return PaymentOutcome.SUCCEEDED
    if status == "failed":
        return PaymentOutcome.FAILED
    return None


def attempt_from_charge(
    charge: Json,
    *,
    event_id: str,
    org_id: str,
    at: datetime,
    outcome: PaymentOutcome | None = None,
    intent: Json | None = None,
    invoice: Json | None = None,
) -> PaymentAttempt:
    """The attempt a charge records (a charge event, or the charge fetched for an invoice event,
    whose `outcome` and invoice then say what the invoice event said)."""
    c = StripeFields("charge", charge)
    charge_id = c.id("id")
    if charge_id is None:
        raise PayloadError("data.object.id", "must be the charge id")
    found = outcome or charge_outcome(charge)
    if found is None:
        raise PayloadError("data.object.status", "must be succeeded or failed")
    pi = StripeFields("payment_intent", intent)
    failure = _charge_failure(c)
    if pi:
        from_intent = _intent_failure(pi)
        failure = _Failure(
            decline=failure.decline or from_intent.decline,
            code=failure.code or from_intent.code,
            message=failure.message or from_intent.message,
        )
    inv = StripeFields("invoice", invoice)
    return _attempt(
        event_id=event_id,
        org_id=org_id,
        customer_id=c.id("customer") or inv.id("customer"),
        invoice_id=inv.id("id"),
        charge_id=charge_id,
        intent_id=c.id("payment_intent") or pi.id("id"),
        amount=_amount(c, "amount"),
        currency=_currency(c),
        outcome=found,
        method_type=c.text("payment_method_details.type")
        or pi.text("last_payment_error.payment_method.type"),
        failure=failure,
        attempt_number=inv.integer("attempt_count"),
        at=at,
    )


def attempt_from_intent(
    intent: Json, *, event_id: str, org_id: str, at: datetime, invoice: Json | None = None
) -> PaymentAttempt:
    """A failed attempt from `payment_intent.payment_failed` (or an intent fetched for an invoice
    that never reached a charge)."""
    pi = StripeFields("payment_intent", intent)
    intent_id = pi.id("id")
    if intent_id is None:
        raise PayloadError("data.object.id", "must be the payment intent id")
    inv = StripeFields("invoice", invoice)
    return _attempt(
        event_id=event_id,
        org_id=org_id,
        customer_id=pi.id("customer") or inv.id("customer"),
        invoice_id=inv.id("id"),
        charge_id=pi.id("latest_charge") or pi.id("last_payment_error.charge"),
        intent_id=intent_id,
        amount=_amount(pi, "amount"),
        currency=_currency(pi),
        outcome=PaymentOutcome.FAILED,
        method_type=pi.text("last_payment_error.payment_method.type"),
        failure=_intent_failure(pi),
        attempt_number=inv.integer("attempt_count"),
        at=at,
    )


def invoice_amount(invoice: Json, outcome: PaymentOutcome) -> int:
    """What the invoice event says was paid or is due: 0 means nothing to collect."""
    inv = StripeFields("invoice", invoice)
    if outcome is PaymentOutcome.SUCCEEDED:
        return _amount(inv, "amount_paid", "total")
    return _amount(inv, "amount_due", "amount_remaining", "total")


def attempt_from_invoice(
    invoice: Json,
    fetched: FetchedPayment,
    *,
    event_id: str,
    org_id: str,
    outcome: PaymentOutcome,
    at: datetime,
) -> PaymentAttempt | None:
    """The attempt behind an invoice event, from the charge (or intent) fetched for it."""
    if fetched.charge is not None:
        return attempt_from_charge(
            fetched.charge, event_id=event_id, org_id=org_id, at=at, outcome=outcome,
            intent=fetched.payment_intent, invoice=invoice,
        )
    if fetched.payment_intent is not None and outcome is PaymentOutcome.FAILED:
        return attempt_from_intent(
            fetched.payment_intent, event_id=event_id, org_id=org_id, at=at, invoice=invoice
        )
    return None


def refunds_of_charge(
    charge: Json, *, event_id: str, org_id: str, already_refunded_cents: int, at: datetime
) -> tuple[list[Refund], int]:
    """The refund a charge.refunded event records, and the charge's total refunded amount.

    The pinned API version does not list a charge's refunds in events (`refunds` is only there
    when expanded, which webhooks never do); the refund is what the cumulative `amount_refunded`
    adds to what we recorded for the charge, keyed by the charge and that total, so a redelivery
    or an older event arriving late adds nothing."""
    c = StripeFields("charge", charge)
    charge_id = c.id("id")
    if charge_id is None:
        raise PayloadError("data.object.id", "must be the charge id")
    currency = _currency(c)
    total = _amount(c, "amount_refunded")
    found: list[Refund] = []
    if total > already_refunded_cents:
        found.append(
            Refund(
                refund_key=f"{charge_id}:{total}",
                event_id=event_id,
                org_id=org_id,
                charge_id=charge_id,
                payment_intent_id=c.id("payment_intent"),
                amount_cents=total - already_refunded_cents,
                currency=currency,
                reason=None,
                refunded_at=at,
            )
        )
    return found, total


def _ts(value: int | None) -> datetime | None:
    if value is None or value < 0:
        return None
    try:
        return datetime.fromtimestamp(value, UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _text(value: str | None, size: int) -> str | None:
    """A string Stripe sent, kept only when it fits its column and holds no control characters."""
    if value is None or len(value) > size:
        return None
    try:
        storable(value)
    except ValueError:
        return None
    return value


def stripe_invoice_of(invoice: Json, *, org_id: str, event_created: datetime) -> StripeInvoice:
    """Stripe's invoice as an invoice event describes it: what support shows beside ours."""
    inv = StripeFields("invoice", invoice)
    invoice_id = inv.id("id")
    if invoice_id is None or _text(invoice_id, 255) is None:
        raise PayloadError("data.object.id", "must be the invoice id")
    currency = inv.text("currency")
    url = _text(inv.text("hosted_invoice_url"), 1000)
    period = inv.mapping("metadata").get("period")
    return StripeInvoice(
        stripe_invoice_id=invoice_id,
        org_id=org_id,
        customer_id=_text(inv.id("customer"), 255),
        number=_text(inv.text("number"), 100),
        status=_text(inv.text("status"), 32),
        currency=currency.lower() if currency and len(currency) == 3 else None,
        amount_due_cents=inv.integer("amount_due"),
        amount_paid_cents=inv.integer("amount_paid"),
        total_cents=inv.integer("total"),
        hosted_invoice_url=url if url and url.startswith("https://") else None,
        period=stripe_invoice_period(
            metadata_period=period if isinstance(period, str) else None,
            period_start=_ts(inv.integer("period_start")),
            period_end=_ts(inv.integer("period_end")),
        ),
        event_created=event_created,
    )
