"""Read Stripe event payloads into our values, tolerating the shapes Stripe API versions use.

Stripe sends ids for related objects unless they were expanded; where an expanded object would
carry more (a charge's payment method, a payment intent's last error) we read it when present.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billing_core.errors import BadRequest
from billing_core.http import storable
from billing_engine.payments.rules import (
    PaymentAttempt,
    PaymentOutcome,
    Refund,
    failure_family,
    method_label,
)
from billing_engine.subscriptions.rules import SubscriptionState

Json = Mapping[str, Any]

# Far above any amount Stripe accepts (12 digits at most, in zero-decimal currencies), and low
# enough that sums of them (a charge's refunds, a period's payments) stay inside a BIGINT.
MAX_AMOUNT = 10**15
MAX_ATTEMPT = 2**31 - 1  # an INTEGER column
# The integer fields of an event's object that we store: (name, least value, greatest value).
# An invoice's `total` may be negative (credits larger than the charges); the others may not.
BOUNDED_FIELDS = (
    ("amount_paid", 0, MAX_AMOUNT),
    ("amount_due", 0, MAX_AMOUNT),
    ("amount_remaining", 0, MAX_AMOUNT),
    ("total", -MAX_AMOUNT, MAX_AMOUNT),
    ("amount_refunded", 0, MAX_AMOUNT),
    ("amount", 0, MAX_AMOUNT),
    ("attempt_count", 0, MAX_ATTEMPT),
)


class PayloadError(BadRequest):
    """The verified body is not a Stripe event we can read; names the field and why."""

    code = "invalid_event"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)


@dataclass(frozen=True)
class InboxEvent:
    event_id: str
    type: str
    created: datetime
    livemode: bool
    customer_id: str | None
    payload: str

    @property
    def object(self) -> Json:
        return parse_object(self.payload)


def _timestamp(value: Any, field: str) -> datetime:
    found = _optional_ts(value)
    if found is None:
        raise PayloadError(field, "must be a Unix timestamp in seconds, before year 10000")
    return found


def _optional_ts(value: Any) -> datetime | None:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        try:
            return datetime.fromtimestamp(value, UTC)
        except (OverflowError, ValueError, OSError):
            return None
    return None


def object_id(value: Any) -> str | None:
    """An id that Stripe sends either as a string or, when expanded, as an object."""
    if isinstance(value, str) and value:
        return value
    if isinstance(value, Mapping):
        inner = value.get("id")
        return inner if isinstance(inner, str) and inner else None
    return None


def _mapping(value: Any) -> Json:
    return value if isinstance(value, Mapping) else {}


def _list_data(value: Any) -> list[Json]:
    """The items of a Stripe list object ({"object": "list", "data": [...]}) or a plain list."""
    if isinstance(value, Mapping):
        value = value.get("data")
    if isinstance(value, list):
        return [item for item in value if isinstance(item, Mapping)]
    return []


def _storable(text: str) -> bool:
    try:
        storable(text)
    except ValueError:
        return False
    return True


def read_event(body: bytes) -> InboxEvent:
    try:
        text = body.decode("utf-8")
        raw = json.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError("body", f"is not a JSON object ({exc.__class__.__name__})") from None
    if not isinstance(raw, Mapping):
        raise PayloadError("body", "must be a JSON object")
    event_id = raw.get("id")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 255 or not _storable(event_id):
        raise PayloadError("id", "must be the Stripe event id (1 to 255 characters)")
    event_type = raw.get("type")
    if not isinstance(event_type, str) or not 1 <= len(event_type) <= 100:
        raise PayloadError("type", "must be the Stripe event type (1 to 100 characters)")
    if not _storable(event_type):
        raise PayloadError("type", "must be the Stripe event type (no control characters)")
    created = _timestamp(raw.get("created"), "created")
    obj = _mapping(raw.get("data")).get("object")
    if not isinstance(obj, Mapping):
        raise PayloadError("data.object", "must be the object the event describes")
    if obj.get("object") == "customer":
        customer = object_id(obj.get("id"))
    else:
        customer = object_id(obj.get("customer"))
    if customer and not _storable(customer):
        raise PayloadError("data.object.customer", "must be a Stripe customer id")
    _check_bounds(obj, "data.object")
    for index, refund in enumerate(_list_data(obj.get("refunds"))):
        _check_bounds(refund, f"data.object.refunds.data[{index}]")
    return InboxEvent(
        event_id=event_id,
        type=event_type,
        created=created,
        livemode=bool(raw.get("livemode", False)),
        customer_id=customer[:255] if customer else None,
        payload=text,
    )


def _check_bounds(obj: Json, where: str) -> None:
    """Refuse, before anything is stored, an amount no column could hold or Stripe could send:
    a verified event with `amount_paid = 10**30` is answered 400 naming the field."""
    for name, least, greatest in BOUNDED_FIELDS:
        value = obj.get(name)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise PayloadError(f"{where}.{name}", "must be an integer (the currency's minor unit)")
        if not least <= value <= greatest:
            raise PayloadError(f"{where}.{name}", f"must be between {least} and {greatest}")


def parse_object(payload: str) -> Json:
    raw = json.loads(payload)
    return _mapping(_mapping(raw.get("data")).get("object"))


def org_hints(obj: Json) -> list[str]:
    """Org ids the object names in metadata (ours first, then its subscription's)."""
    found: list[str] = []
    for holder in (
        obj,
        _mapping(obj.get("subscription_details")),
        _mapping(_mapping(obj.get("parent")).get("subscription_details")),
    ):
        value = _mapping(holder.get("metadata")).get("org_id")
        if isinstance(value, str) and value and value not in found:
            found.append(value)
    return found


# -- checkout -----------------------------------------------------------------------------------


def checkout_org(obj: Json) -> str | None:
    for value in (obj.get("client_reference_id"), _mapping(obj.get("metadata")).get("org_id")):
        if isinstance(value, str) and value:
            return value
    return None


# -- subscriptions ------------------------------------------------------------------------------


def subscription_state(obj: Json, *, event_created: datetime) -> SubscriptionState:
    sub_id = object_id(obj.get("id"))
    if sub_id is None:
        raise PayloadError("data.object.id", "must be the subscription id")
    status = obj.get("status")
    if not isinstance(status, str) or not status:
        raise PayloadError("data.object.status", "must be the subscription status")
    items = _list_data(obj.get("items"))
    prices: list[str] = []
    for item in items:
        price = object_id(item.get("price")) or object_id(item.get("plan"))
        if price and price not in prices:
            prices.append(price)
    legacy = object_id(obj.get("plan"))
    if legacy and legacy not in prices:
        prices.append(legacy)
    # Since API version 2025-03-31 the period lives on each item, not the subscription.
    first = items[0] if items else {}
    start = _optional_ts(obj.get("current_period_start")) or _optional_ts(
        first.get("current_period_start")
    )
    end = _optional_ts(obj.get("current_period_end")) or _optional_ts(
        first.get("current_period_end")
    )
    return SubscriptionState(
        subscription_id=sub_id,
        customer_id=object_id(obj.get("customer")),
        status=status,
        price_ids=tuple(prices),
        current_period_start=start,
        current_period_end=end,
        cancel_at_period_end=bool(obj.get("cancel_at_period_end", False)),
        event_created=event_created,
    )


# -- invoices and payments ----------------------------------------------------------------------


def _invoice_payment_objects(invoice: Json) -> Iterator[tuple[str, Any]]:
    """("charge" | "payment_intent", id-or-object) pairs the invoice links, old and new shapes."""
    for key in ("charge", "payment_intent"):
        if invoice.get(key):
            yield key, invoice[key]
    for entry in _list_data(invoice.get("payments")):
        payment = _mapping(entry.get("payment"))
        for key in ("charge", "payment_intent"):
            if payment.get(key):
                yield key, payment[key]


def _amount(invoice: Json, *keys: str) -> int:
    for key in keys:
        value = invoice.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    raise PayloadError(f"data.object.{keys[0]}", "must be an amount in the currency's minor unit")


def payment_attempt(
    invoice: Json, *, event_id: str, org_id: str, outcome: PaymentOutcome, at: datetime
) -> PaymentAttempt:
    if outcome is PaymentOutcome.SUCCEEDED:
        amount = _amount(invoice, "amount_paid", "total")
    else:
        amount = _amount(invoice, "amount_due", "amount_remaining", "total")
    currency = invoice.get("currency")
    if not isinstance(currency, str) or len(currency) != 3:
        raise PayloadError("data.object.currency", "must be a three-letter currency code")
    charge_id = intent_id = None
    method_type: str | None = None
    decline = code = message = None
    for kind, value in _invoice_payment_objects(invoice):
        if kind == "charge":
            charge_id = charge_id or object_id(value)
        else:
            intent_id = intent_id or object_id(value)
        detail = _mapping(value)
        if kind == "charge" and detail:
            method_type = method_type or _mapping(detail.get("payment_method_details")).get("type")
            outcome_detail = _mapping(detail.get("outcome"))
            decline = decline or outcome_detail.get("reason")
            code = code or detail.get("failure_code")
            message = message or detail.get("failure_message")
        elif kind == "payment_intent" and detail:
            error = _mapping(detail.get("last_payment_error"))
            method_type = (
                method_type
                or _mapping(error.get("payment_method")).get("type")
                or _mapping(detail.get("payment_method")).get("type")
            )
            decline = decline or error.get("decline_code")
            code = code or error.get("code")
            message = message or error.get("message")
            types = detail.get("payment_method_types")
            if not method_type and isinstance(types, list) and len(types) == 1:
                method_type = types[0]
    if not method_type:
        types = _mapping(invoice.get("payment_settings")).get("payment_method_types")
        if isinstance(types, list) and len(types) == 1:
            method_type = types[0]
    failed = outcome is PaymentOutcome.FAILED
    attempt_count = invoice.get("attempt_count")
    return PaymentAttempt(
        event_id=event_id,
        org_id=org_id,
        customer_id=object_id(invoice.get("customer")),
        invoice_id=object_id(invoice.get("id")),
        charge_id=charge_id,
        payment_intent_id=intent_id,
        amount_cents=amount,
        currency=currency.lower(),
        outcome=outcome,
        method=method_label(method_type if isinstance(method_type, str) else None),
        failure_code=(str(decline or code)[:64] if failed and (decline or code) else None),
        failure_reason=failure_family(decline, code) if failed else None,
        failure_message=str(message)[:500] if failed and message else None,
        attempt_number=attempt_count if isinstance(attempt_count, int) else None,
        attempted_at=at,
    )


def refunds_of_charge(
    charge: Json, *, event_id: str, org_id: str, already_refunded_cents: int, at: datetime
) -> tuple[list[Refund], int]:
    """The refunds a charge.refunded event carries, and the charge's total refunded amount.

    Recent API versions do not include the charge's refund list in events; then the refund is
    what the cumulative `amount_refunded` adds to what we recorded for the charge."""
    charge_id = object_id(charge.get("id"))
    if charge_id is None:
        raise PayloadError("data.object.id", "must be the charge id")
    currency = charge.get("currency")
    if not isinstance(currency, str) or len(currency) != 3:
        raise PayloadError("data.object.currency", "must be a three-letter currency code")
    total = _amount(charge, "amount_refunded")
    intent = object_id(charge.get("payment_intent"))
    listed = _list_data(charge.get("refunds"))
    found: list[Refund] = []
    for item in listed:
        refund_id = object_id(item.get("id"))
        amount = item.get("amount")
        if refund_id is None or not isinstance(amount, int) or item.get("status") in {
            "failed",
            "canceled",
        }:
            continue
        found.append(
            Refund(
                refund_key=refund_id,
                event_id=event_id,
                org_id=org_id,
                charge_id=charge_id,
                payment_intent_id=intent,
                amount_cents=amount,
                currency=str(item.get("currency") or currency).lower(),
                reason=item.get("reason") if isinstance(item.get("reason"), str) else None,
                refunded_at=_optional_ts(item.get("created")) or at,
            )
        )
    if not listed and total > already_refunded_cents:
        found.append(
            Refund(
                refund_key=f"{charge_id}:{total}",
                event_id=event_id,
                org_id=org_id,
                charge_id=charge_id,
                payment_intent_id=intent,
                amount_cents=total - already_refunded_cents,
                currency=currency.lower(),
                reason=None,
                refunded_at=at,
            )
        )
    return found, total
