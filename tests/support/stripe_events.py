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
            method_types: list[str] | None = None, payment_intent: Any = None,
            metadata: dict[str, str] | None = None, currency: str = "usd") -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": new_id("in"),
        "object": "invoice",
        "customer": customer,
        "currency": currency,
        "amount_due": amount,
        "amount_paid": amount if paid else 0,
        "amount_remaining": 0 if paid else amount,
        "attempt_count": attempt_count,
        "status": "paid" if paid else "open",
        "metadata": metadata or {},
        "payment_settings": {"payment_method_types": method_types},
    }
    if payment_intent is not None:
        obj["payments"] = {
            "object": "list",
            "data": [{"object": "invoice_payment",
                      "payment": {"type": "payment_intent", "payment_intent": payment_intent}}],
        }
    return obj


def failed_intent(pi_id: str, *, code: str = "card_declined", decline_code: str | None = None,
                  method: str = "card", message: str = "Your card was declined.") -> dict[str, Any]:
    """An expanded PaymentIntent after a failed attempt."""
    return {
        "id": pi_id,
        "object": "payment_intent",
        "status": "requires_payment_method",
        "last_payment_error": {
            "type": "card_error",
            "code": code,
            "decline_code": decline_code,
            "message": message,
            "payment_method": {"id": new_id("pm"), "object": "payment_method", "type": method},
        },
    }


def refunded_charge(charge_id: str, customer: str, *, amount: int, amount_refunded: int,
                    payment_intent: str | None = None,
                    refunds: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "id": charge_id,
        "object": "charge",
        "customer": customer,
        "amount": amount,
        "amount_refunded": amount_refunded,
        "currency": "usd",
        "refunded": amount_refunded >= amount,
        "payment_intent": payment_intent,
        "payment_method_details": {"type": "card"},
    }
    if refunds is not None:
        obj["refunds"] = {"object": "list", "data": refunds}
    return obj
