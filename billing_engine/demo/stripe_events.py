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
        # refundable: (customer, charge object, cents)
        self.charges: list[tuple[Customer, dict[str, Any], int]] = []

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

    def _charge(self, customer: Customer, amount: int, method: str, *,
                decline: tuple[str, str | None, str] | None = None) -> dict[str, Any]:
        """A charge as the pinned API version sends it: no invoice, no refund list."""
        code, reason, message = decline or (None, None, None)
        return {
            "id": _id("ch"), "object": "charge", "amount": amount,
            "amount_captured": 0 if decline else amount, "amount_refunded": 0,
            "captured": not decline, "created": int(time.time()), "currency": "usd",
            "customer": customer.customer_id, "failure_code": code, "failure_message": message,
            "livemode": False, "metadata": {}, "paid": not decline,
            "outcome": {"network_status": "declined_by_network" if decline
                        else "approved_by_network", "reason": reason, "risk_level": "normal",
                        "type": "issuer_declined" if decline else "authorized"},
            "payment_intent": _id("pi"), "payment_method": _id("pm"),
            "payment_method_details": {method: {}, "type": method},
            "refunded": False, "status": "failed" if decline else "succeeded",
        }

    def _invoice(self, customer: Customer, amount: int, *, paid: bool) -> dict[str, Any]:
        """An invoice event's object: it names no charge and no payment intent."""
        invoice_id, now = _id("in"), int(time.time())
        return {
            "id": invoice_id, "object": "invoice", "customer": customer.customer_id,
            "currency": "usd", "amount_due": amount, "amount_paid": amount if paid else 0,
            "amount_remaining": 0 if paid else amount, "attempt_count": 1, "created": now,
            "status": "paid" if paid else "open", "total": amount,
            "number": f"DEMO{invoice_id[-6:].upper()}-0001",
            "hosted_invoice_url": f"https://invoice.stripe.com/i/acct_demo/test_{invoice_id}",
            "period_start": now - 30 * 86400, "period_end": now,
            "metadata": {}, "parent": {"type": "subscription_details", "subscription_details": {
                "metadata": {"org_id": customer.org_id},
                "subscription": customer.subscription_id}},
        }

    def payment(self, customer: Customer) -> None:
        """One invoice payment attempt, mostly paid, sometimes declined with a real reason; the
        charge events carry the method and the decline, as they do from Stripe."""
        amount = customer.base_fee_cents + self.rng.choice((0, 0, 125, 480, 1210))
        method = self.rng.choice(METHODS)
        if self.rng.random() < 0.92:
            charge = self._charge(customer, amount, method)
            self.deliver("charge.succeeded", charge)
            self.deliver("invoice.paid", self._invoice(customer, amount, paid=True))
            self.charges.append((customer, charge, amount))
            return
        failed = self._charge(customer, amount, method, decline=self.rng.choice(FAILURE_CODES))
        self.deliver("charge.failed", failed)
        self.deliver("invoice.payment_failed", self._invoice(customer, amount, paid=False))

    def refund(self) -> None:
        if not self.charges:
            return
        customer, charge, amount = self.charges.pop(self.rng.randrange(len(self.charges)))
        refunded = amount if self.rng.random() < 0.5 else amount // 2
        self.deliver("charge.refunded", {
            **charge, "amount_refunded": refunded, "refunded": refunded >= amount,
        })

    def tick(self, customers: list[Customer]) -> None:
        """What a few seconds of a live payment book look like."""
        if not customers:
            return
        self.payment(self.rng.choice(customers))
        if self.rng.random() < 0.04:
            self.refund()
