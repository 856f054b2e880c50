"""Demo Stripe deliveries: signed webhook events sent to the running engine, as Stripe would.

They go through the real path (signature, inbox, handlers, metrics), so the console's payment
panels and the support card have subscriptions, payments, failures and refunds to show. The
secret is the engine's own STRIPE_WEBHOOK_SECRET; `demo` makes a random one per run when unset.
"""

from __future__ import annotations

import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import stripe

log = logging.getLogger("billing_engine.demo")

# Outcome mix, roughly what a healthy card-heavy B2B book looks like: ~92 % succeed.
FAILURE_CODES = (
    ("card_declined", "generic_decline", "Your card was declined."),
    ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    ("expired_card", None, "Your card has expired."),
    ("processing_error", None, "An error occurred while processing your card."),
)
METHODS = ("card",) * 16 + ("sepa_debit",) * 3 + ("us_bank_account",)


def _id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


@dataclass
class Customer:
    org_id: str
    customer_id: str
    price_id: str
    base_fee_cents: int
    subscription_id: str


class DemoStripe:
    def __init__(self, client: httpx.Client, secret: str, *, seed: int = 5) -> None:
        self.client = client
        self.secret = secret
        self.rng = random.Random(seed)
        self.charges: list[tuple[Customer, str, int]] = []  # refundable (customer, charge, cents)

    # -- delivery ---------------------------------------------------------------------------

    def deliver(self, event_type: str, obj: dict[str, Any]) -> int:
        event = {
            "id": _id("evt"), "object": "event", "api_version": "2026-10-28.endive",
            "created": int(time.time()), "livemode": False, "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type, "data": {"object": obj},
        }
        body = json.dumps(event)
        header = stripe.WebhookSignature.generate_signature_header(
            body, self.secret, timestamp=int(time.time())
        )
        headers = {"Content-Type": "application/json", "Stripe-Signature": header}
        response = self.client.post("/webhooks/stripe", content=body, headers=headers)
        if self.rng.random() < 0.05:  # Stripe redelivers now and then: counted once
            self.client.post("/webhooks/stripe", content=body, headers=headers)
        if response.status_code >= 300:
            log.warning("demo webhook not accepted",
                        extra={"status": response.status_code, "type": event_type})
        return response.status_code

    # -- scenarios --------------------------------------------------------------------------

    def subscribe(self, org_id: str, price_id: str, base_fee_cents: int) -> Customer:
        customer = Customer(org_id, _id("cus"), price_id, base_fee_cents, _id("sub"))
        now = int(time.time())
        self.deliver("checkout.session.completed", {
            "id": _id("cs"), "object": "checkout.session", "mode": "subscription",
            "status": "complete", "client_reference_id": org_id,
            "customer": customer.customer_id, "subscription": customer.subscription_id,
            "metadata": {"org_id": org_id},
        })
        self.deliver("customer.subscription.created", {
            "id": customer.subscription_id, "object": "subscription",
            "customer": customer.customer_id, "status": "active",
            "cancel_at_period_end": False, "metadata": {"org_id": org_id},
            "items": {"object": "list", "data": [{
                "id": _id("si"), "object": "subscription_item",
                "price": {"id": price_id, "object": "price", "currency": "usd"},
                "current_period_start": now - 86400, "current_period_end": now + 29 * 86400,
            }]},
        })
        return customer

    def payment(self, customer: Customer) -> None:
        """One invoice payment attempt: mostly paid, sometimes failed with a real reason."""
        amount = customer.base_fee_cents + self.rng.choice((0, 0, 125, 480, 1210))
        method = self.rng.choice(METHODS)
        invoice: dict[str, Any] = {
            "id": _id("in"), "object": "invoice", "customer": customer.customer_id,
            "currency": "usd", "amount_due": amount, "attempt_count": 1,
            "metadata": {"org_id": customer.org_id},
            "payment_settings": {"payment_method_types": [method]},
        }
        if self.rng.random() < 0.92:
            charge = _id("ch")
            invoice.update(amount_paid=amount, amount_remaining=0, status="paid", payments={
                "object": "list", "data": [{"object": "invoice_payment", "payment": {
                    "type": "charge", "charge": {
                        "id": charge, "object": "charge",
                        "payment_method_details": {"type": method}}}}]})
            self.deliver("invoice.paid", invoice)
            self.charges.append((customer, charge, amount))
            return
        code, decline, message = self.rng.choice(FAILURE_CODES)
        invoice.update(amount_paid=0, amount_remaining=amount, status="open", payments={
            "object": "list", "data": [{"object": "invoice_payment", "payment": {
                "type": "payment_intent", "payment_intent": {
                    "id": _id("pi"), "object": "payment_intent",
                    "status": "requires_payment_method",
                    "last_payment_error": {
                        "type": "card_error", "code": code, "decline_code": decline,
                        "message": message,
                        "payment_method": {"id": _id("pm"), "object": "payment_method",
                                           "type": method}}}}}]})
        self.deliver("invoice.payment_failed", invoice)

    def refund(self) -> None:
        if not self.charges:
            return
        customer, charge, amount = self.charges.pop(self.rng.randrange(len(self.charges)))
        refunded = amount if self.rng.random() < 0.5 else amount // 2
        self.deliver("charge.refunded", {
            "id": charge, "object": "charge", "customer": customer.customer_id,
            "amount": amount, "amount_refunded": refunded, "currency": "usd",
            "refunded": refunded >= amount, "payment_intent": None,
            "payment_method_details": {"type": "card"},
        })

    def tick(self, customers: list[Customer]) -> None:
        """What a few seconds of a live payment book look like."""
        if not customers:
            return
        self.payment(self.rng.choice(customers))
        if self.rng.random() < 0.04:
            self.refund()
