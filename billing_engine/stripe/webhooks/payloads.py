"""Read Stripe event payloads into our values, as the pinned API version sends them.

Objects are read through `StripeFields` (fields.py), whose declared paths a test checks against
stripe-python's typed objects. Webhooks carry ids for related objects, never expansions: an
invoice event names no charge, so its payment details come from the charge events or are fetched
through the Stripe client (client.py, `invoice_payment`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billing_core.errors import BadRequest
from billing_core.http import storable
from billing_engine.stripe.webhooks.fields import StripeFields
from billing_engine.subscriptions.rules import SubscriptionState

Json = Mapping[str, Any]

# Far above any amount Stripe accepts (12 digits at most, in zero-decimal currencies), and low
# enough that sums of them (a charge's refunds, a period's payments) stay inside a BIGINT.
MAX_AMOUNT = 10**15
MAX_ATTEMPT = 2**31 - 1  # an INTEGER column
_VERSION = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(\.[a-z]+)?")
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
    api_version: str | None = None

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
    fields = StripeFields("event", raw)
    event_id = fields.get("id")
    if not isinstance(event_id, str) or not 1 <= len(event_id) <= 255 or not _storable(event_id):
        raise PayloadError("id", "must be the Stripe event id (1 to 255 characters)")
    event_type = fields.get("type")
    if not isinstance(event_type, str) or not 1 <= len(event_type) <= 100:
        raise PayloadError("type", "must be the Stripe event type (1 to 100 characters)")
    if not _storable(event_type):
        raise PayloadError("type", "must be the Stripe event type (no control characters)")
    created = _timestamp(fields.get("created"), "created")
    obj = fields.get("data.object")
    if not isinstance(obj, Mapping):
        raise PayloadError("data.object", "must be the object the event describes")
    if obj.get("object") == "customer":
        customer = object_id(obj.get("id"))
    else:
        customer = object_id(obj.get("customer"))
    if customer and not _storable(customer):
        raise PayloadError("data.object.customer", "must be a Stripe customer id")
    _check_bounds(obj, "data.object")
    return InboxEvent(
        event_id=event_id,
        type=event_type,
        created=created,
        livemode=bool(fields.get("livemode") or False),
        customer_id=customer[:255] if customer else None,
        payload=text,
        api_version=_version(fields.get("api_version")),
    )


def version_relation(version: str | None, pinned: str) -> str | None:
    """None when `version` is the pinned one; else `older` or `newer` by its release date
    (Stripe versions are "YYYY-MM-DD" or "YYYY-MM-DD.name"), or `unknown`: a bounded label."""
    if version == pinned:
        return None
    if version is None or not _VERSION.fullmatch(version):
        return "unknown"
    date, theirs = version[:10], pinned[:10]
    if date == theirs:  # same day, another name: cannot order them
        return "unknown"
    return "older" if date < theirs else "newer"


def _version(value: Any) -> str | None:
    """The event's API version, kept only when it looks like one (it reaches a log line)."""
    if isinstance(value, str) and 0 < len(value) <= 40 and _storable(value):
        return value
    return None


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
    return StripeFields("event", json.loads(payload)).mapping("data.object")


def org_hints(obj: Json, kind: str) -> list[str]:
    """Org ids the object names in metadata (its own first, then its subscription's)."""
    fields = StripeFields(kind, obj)
    holders = [fields.mapping("metadata")]
    if kind == "invoice":
        holders.append(fields.mapping("parent.subscription_details.metadata"))
    found: list[str] = []
    for metadata in holders:
        value = metadata.get("org_id")
        if isinstance(value, str) and value and value not in found:
            found.append(value)
    return found


# -- checkout -----------------------------------------------------------------------------------


def checkout_org(obj: Json) -> str | None:
    session = StripeFields("checkout.session", obj)
    for value in (session.get("client_reference_id"), session.mapping("metadata").get("org_id")):
        if isinstance(value, str) and value:
            return value
    return None


# -- subscriptions ------------------------------------------------------------------------------


def subscription_state(obj: Json, *, event_created: datetime) -> SubscriptionState:
    sub = StripeFields("subscription", obj)
    sub_id = sub.id("id")
    if sub_id is None:
        raise PayloadError("data.object.id", "must be the subscription id")
    status = sub.text("status")
    if status is None:
        raise PayloadError("data.object.status", "must be the subscription status")
    items = sub.items("items.data", "subscription_item")
    prices: list[str] = []
    for item in items:
        price = item.id("price")
        if price and price not in prices:
            prices.append(price)
    # Since API version 2025-03-31 the period lives on each item, not the subscription.
    first = items[0] if items else StripeFields("subscription_item", {})
    return SubscriptionState(
        subscription_id=sub_id,
        customer_id=sub.id("customer"),
        status=status,
        price_ids=tuple(prices),
        current_period_start=_optional_ts(first.get("current_period_start")),
        current_period_end=_optional_ts(first.get("current_period_end")),
        cancel_at_period_end=bool(sub.get("cancel_at_period_end") or False),
        event_created=event_created,
    )
