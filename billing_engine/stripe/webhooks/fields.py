"""Every field the engine reads from a Stripe object, declared in one place.

The webhook parser and the payment fetches read Stripe objects only through `StripeFields`,
which refuses a path not listed here. A test walks each listed path through stripe-python's typed
classes for the pinned API version (tests/engine/test_stripe_schema.py), so a field Stripe
renamed or removed (as 2025-03-31.basil removed `invoice.charge` and `invoice.payment_intent`)
fails a test instead of silently reading nothing in production.

A path is dotted; `data` steps into a list object's items. `metadata` is read whole (its keys are
ours, not Stripe's).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Our name for each object type -> the stripe-python class describing it (attribute path under
# the `stripe` module).
STRIPE_CLASSES: Mapping[str, str] = {
    "event": "Event",
    "checkout.session": "checkout.Session",
    "subscription": "Subscription",
    "subscription_item": "SubscriptionItem",
    "invoice": "Invoice",
    "invoice_payment": "InvoicePayment",
    "payment_intent": "PaymentIntent",
    "charge": "Charge",
}

READ_PATHS: Mapping[str, frozenset[str]] = {
    "event": frozenset(
        {"id", "type", "created", "livemode", "api_version", "data", "data.object"}
    ),
    "checkout.session": frozenset({"id", "customer", "client_reference_id", "metadata"}),
    "subscription": frozenset(
        {"id", "customer", "status", "cancel_at_period_end", "metadata", "items", "items.data"}
    ),
    "subscription_item": frozenset({"price", "current_period_start", "current_period_end"}),
    "invoice": frozenset(
        {
            "id",
            "customer",
            "currency",
            "status",
            "number",
            "hosted_invoice_url",
            "amount_due",
            "amount_paid",
            "amount_remaining",
            "total",
            "attempt_count",
            "period_start",
            "period_end",
            "created",
            "metadata",
            "parent.subscription_details.metadata",
            "parent.subscription_details.subscription",
        }
    ),
    "invoice_payment": frozenset(
        {"id", "status", "created", "payment.type", "payment.charge", "payment.payment_intent"}
    ),
    "payment_intent": frozenset(
        {
            "id",
            "customer",
            "amount",
            "currency",
            "metadata",
            "latest_charge",
            "last_payment_error.charge",
            "last_payment_error.code",
            "last_payment_error.decline_code",
            "last_payment_error.message",
            "last_payment_error.payment_method.type",
        }
    ),
    "charge": frozenset(
        {
            "id",
            "customer",
            "status",
            "amount",
            "amount_refunded",
            "currency",
            "created",
            "metadata",
            "payment_intent",
            "payment_method_details.type",
            "outcome.reason",
            "failure_code",
            "failure_message",
        }
    ),
}


class UndeclaredField(KeyError):
    """A read of a path that READ_PATHS does not list: a programming error, caught by tests."""


class StripeFields:
    """A Stripe object (a JSON mapping) of one type, read only through its declared paths.

    Missing fields, nulls and wrong shapes read as None: Stripe omits what a version lacks."""

    __slots__ = ("kind", "raw")

    def __init__(self, kind: str, raw: Any) -> None:
        self.kind = kind
        self.raw: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}

    def __bool__(self) -> bool:
        return bool(self.raw)

    def get(self, path: str) -> Any:
        if path not in READ_PATHS[self.kind]:
            raise UndeclaredField(f"{self.kind}.{path} is not in READ_PATHS")
        value: Any = self.raw
        for part in path.split("."):
            if not isinstance(value, Mapping):
                return None
            value = value.get(part)
        return value

    def text(self, path: str) -> str | None:
        value = self.get(path)
        return value if isinstance(value, str) and value else None

    def integer(self, path: str) -> int | None:
        value = self.get(path)
        return value if isinstance(value, int) and not isinstance(value, bool) else None

    def id(self, path: str) -> str | None:
        """An id Stripe sends as a string, or as an object when it was expanded."""
        value = self.get(path)
        if isinstance(value, Mapping):
            value = value.get("id")
        return value if isinstance(value, str) and value else None

    def mapping(self, path: str) -> Mapping[str, Any]:
        value = self.get(path)
        return value if isinstance(value, Mapping) else {}

    def items(self, path: str, kind: str) -> list[StripeFields]:
        """The items of a list object (`path` ends in `.data`) as objects of `kind`."""
        value = self.get(path)
        if not isinstance(value, list):
            return []
        return [StripeFields(kind, item) for item in value if isinstance(item, Mapping)]
