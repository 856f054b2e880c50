"""Stripe events as Stripe sends them, signed with the official library's test helper."""

from __future__ import annotations

import json
import time
import uuid
from datetime import datetime
from typing import Any

import stripe
from fastapi.testclient import TestClient
from httpx import Response

from tests.support.builders import new_org

WEBHOOK_SECRET = "whsec_test_4eC39HqLyjWDarjtT1zdp7dc"
T0 = 1_795_000_000  # a fixed event `created` (2026-11-18); the signature uses the real clock


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:14]}"


def event(event_type: str, obj: dict[str, Any], *, created: int = T0,
          event_id: str | None = None) -> dict[str, Any]:
    return {
        "id": event_id or new_id("evt"),
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": created,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj},
    }


def signature_header(body: str, *, secret: str = WEBHOOK_SECRET,
                     timestamp: int | None = None) -> str:
    return stripe.WebhookSignature.generate_signature_header(  # type: ignore[no-any-return]
        body, secret, timestamp=timestamp if timestamp is not None else int(time.time())
    )


def deliver(client: TestClient, evt: dict[str, Any], *, secret: str = WEBHOOK_SECRET,
            timestamp: int | None = None, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(evt)
    sent = {"Content-Type": "application/json",
            "Stripe-Signature": signature_header(body, secret=secret, timestamp=timestamp)}
    if headers is not None:
        sent = {"Content-Type": "application/json", **headers}
    return client.post("/webhooks/stripe", content=body, headers=sent)


def checkout_completed(org_id: str, customer: str, subscription: str | None = None
                       ) -> dict[str, Any]:
    return {
        "id": new_id("cs"),
        "object": "checkout.session",
        "mode": "subscription",
        "status": "complete",
        "client_reference_id": org_id,
        "customer": customer,
        "subscription": subscription,
        "metadata": {},
    }


def ts(value: datetime) -> int:
    return int(value.timestamp())


def subscription(sub_id: str, customer: str, status: str = "active", *,
                 price: str = "price_team_monthly", period_start: int = T0,
                 period_end: int = T0 + 30 * 86400, cancel_at_period_end: bool = False,
                 metadata: dict[str, str] | None = None) -> dict[str, Any]:
    """The shape of API versions since 2025-03-31: the period sits on each item."""
    return {
        "id": sub_id,
        "object": "subscription",
        "customer": customer,
        "status": status,
        "cancel_at_period_end": cancel_at_period_end,
        "metadata": metadata or {},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": new_id("si"),
                    "object": "subscription_item",
                    "price": {"id": price, "object": "price", "currency": "usd"},
                    "current_period_start": period_start,
                    "current_period_end": period_end,
                }
            ],
        },
    }


def invoice(customer: str, amount: int, *, paid: bool, attempt_count: int = 1,
            invoice_id: str | None = None, status: str | None = None, number: str | None = None,
            period_start: int = T0 - 30 * 86400, period_end: int = T0,
            metadata: dict[str, str] | None = None,
            subscription_metadata: dict[str, str] | None = None,
            currency: str = "usd") -> dict[str, Any]:
    """An invoice as the pinned version sends it in events: no charge, no payment intent (both
    removed in 2025-03-31.basil) and no `payments` (only there when asked to be included, which
    webhooks never do). Its subscription sits under `parent`."""
    invoice_id = invoice_id or new_id("in")
    return {
        "id": invoice_id,
        "object": "invoice",
        "account_country": "US",
        "amount_due": amount,
        "amount_overpaid": 0,
        "amount_paid": amount if paid else 0,
        "amount_remaining": 0 if paid else amount,
        "attempt_count": attempt_count,
        "attempted": attempt_count > 0,
        "billing_reason": "subscription_cycle",
        "collection_method": "charge_automatically",
        "created": period_end,
        "currency": currency,
        "customer": customer,
        "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_1Test/test_{invoice_id}",
        "invoice_pdf": f"https://pay.stripe.com/invoice/acct_1Test/test_{invoice_id}/pdf",
        "lines": {"object": "list", "data": [], "has_more": False,
                  "url": f"/v1/invoices/{invoice_id}/lines"},
        "livemode": False,
        "metadata": metadata or {},
        "number": number or f"TEST{invoice_id[-6:].upper()}-0001",
        "parent": {"type": "subscription_details", "quote_details": None,
                   "subscription_details": {"metadata": subscription_metadata or {},
                                            "subscription": new_id("sub")}},
        "payment_settings": {"payment_method_options": None, "payment_method_types": None},
        "period_end": period_end,
        "period_start": period_start,
        "status": status or ("paid" if paid else "open"),
        "subtotal": amount,
        "total": amount,
    }


DECLINES = {
    # decline code -> (failure_code, message), as Stripe words them for test cards
    "insufficient_funds": ("card_declined", "Your card has insufficient funds."),
    "generic_decline": ("card_declined", "Your card was declined."),
    "expired_card": ("expired_card", "Your card has expired."),
}


def charge(customer: str, amount: int, *, charge_id: str | None = None,
           payment_intent: str | None = None, method: str = "card",
           decline: str | None = None, amount_refunded: int = 0,
           created: int = T0) -> dict[str, Any]:
    """A charge as the pinned version sends it: no `invoice` (removed in basil), no `refunds`
    list (not included since 2022-11-15). `decline` makes it a failed charge."""
    failed = decline is not None
    failure_code, message = DECLINES.get(decline or "", DECLINES["generic_decline"])
    return {
        "id": charge_id or new_id("ch"),
        "object": "charge",
        "amount": amount,
        "amount_captured": 0 if failed else amount,
        "amount_refunded": amount_refunded,
        "captured": not failed,
        "created": created,
        "currency": "usd",
        "customer": customer,
        "failure_code": failure_code if failed else None,
        "failure_message": message if failed else None,
        "livemode": False,
        "metadata": {},
        "outcome": {
            "network_status": "declined_by_network" if failed else "approved_by_network",
            "reason": decline,
            "risk_level": "normal",
            "seller_message": (f"The bank returned the decline code `{decline}`." if failed
                               else "Payment complete."),
            "type": "issuer_declined" if failed else "authorized",
        },
        "paid": not failed,
        "payment_intent": payment_intent,
        "payment_method": new_id("pm"),
        "payment_method_details": {method: {}, "type": method},
        "refunded": amount_refunded >= amount > 0,
        "status": "failed" if failed else "succeeded",
    }


def payment_intent(customer: str, amount: int, *, intent_id: str | None = None,
                   latest_charge: str | None = None, decline: str | None = None,
                   method: str = "card") -> dict[str, Any]:
    """A payment intent; `decline` makes it one whose last attempt failed."""
    error = None
    if decline is not None:
        code, message = DECLINES.get(decline, DECLINES["generic_decline"])
        error = {
            "type": "card_error", "code": code,
            "decline_code": decline if code == "card_declined" else None,
            "charge": latest_charge, "message": message,
            "doc_url": f"https://docs.stripe.com/error-codes/{code.replace('_', '-')}",
            "payment_method": {"id": new_id("pm"), "object": "payment_method", "type": method,
                               "customer": customer},
        }
    return {
        "id": intent_id or new_id("pi"),
        "object": "payment_intent",
        "amount": amount,
        "amount_received": 0 if decline else amount,
        "created": T0,
        "currency": "usd",
        "customer": customer,
        "last_payment_error": error,
        "latest_charge": latest_charge,
        "livemode": False,
        "metadata": {},
        "payment_method": None if decline else new_id("pm"),
        "payment_method_types": [method],
        "status": "requires_payment_method" if decline else "succeeded",
    }


def invoice_payment(invoice_id: str, amount: int, *, intent_id: str, paid: bool,
                    created: int = T0) -> dict[str, Any]:
    """The link Stripe keeps between an invoice and the intent paying it (GET only)."""
    return {
        "id": new_id("inpay"),
        "object": "invoice_payment",
        "amount_paid": amount if paid else None,
        "amount_requested": amount,
        "created": created,
        "currency": "usd",
        "invoice": invoice_id,
        "is_default": True,
        "livemode": False,
        "payment": {"type": "payment_intent", "payment_intent": intent_id},
        "status": "paid" if paid else "open",
        "status_transitions": {"canceled_at": None, "paid_at": created if paid else None},
    }


def refunded_charge(charge_id: str, customer: str, *, amount: int, amount_refunded: int,
                    payment_intent: str | None = None) -> dict[str, Any]:
    """A charge.refunded event's charge: the cumulative `amount_refunded`, no refund list."""
    return charge(customer, amount, charge_id=charge_id, payment_intent=payment_intent,
                  amount_refunded=amount_refunded)


def customer_of(client: TestClient, admin: dict[str, str]) -> tuple[str, str]:
    """A new org on base_usage, linked to a new Stripe customer by a signed checkout event."""
    org = new_org(client, admin, plan="base_usage")
    customer = new_id("cus")
    deliver(client, event("checkout.session.completed", checkout_completed(org, customer)))
    return org, customer
