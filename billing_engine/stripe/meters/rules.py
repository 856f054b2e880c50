"""Pure rules of usage reporting to Stripe: the identifier Stripe sees, Stripe's timestamp
window, how Stripe words a duplicate, backoff, and how a flush is split into requests.

The identifier. Stripe counts a meter event identifier once (it refuses a second event under it
with 400 "An event already exists with identifier ..."). The outbox identifier
(`usage-<org>-<YYYYMMDDHH>-v<version>`) names the usage; the identifier sent to Stripe adds a
suffix naming where it was sent: the first 8 hex digits of SHA-256 over
"<stripe customer id>/<generation>". An org re-linked to another customer therefore sends its
records under new identifiers, which Stripe takes, instead of old ones it refuses; a record an
admin requeues after Stripe rejected it (a generation bump) does the same. Every retry of one
send uses the same identifier, so Stripe still counts the usage once.

The window. Stripe takes meter events whose timestamp lies within the past 35 days and at most
5 minutes ahead. A record whose hour would leave that window before it can reach Stripe is not
sent (Stripe would refuse it for good) but marked expired and counted; an alert fires well
before (UsageMeterRecordsNearWindow, when the oldest unsent hour is 30 days old).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import TypeVar

# Stripe's meter event timestamp window (docs.stripe.com/api/billing/meter-event/create).
STRIPE_WINDOW = timedelta(days=35)
STRIPE_FUTURE_ALLOWANCE = timedelta(minutes=5)
# A record is given up this long before it would leave the window: it has to be sent, travel and
# be validated by Stripe inside the window, and our clock may differ from Stripe's.
WINDOW_SAFETY_MARGIN = timedelta(hours=1)
# Stripe caps an identifier at 100 characters.
MAX_IDENTIFIER_LENGTH = 100
DUPLICATE_MESSAGE_PREFIX = "An event already exists with identifier"
# The v2 meter event stream takes at most 100 events per request.
STREAM_MAX_EVENTS = 100

# The error codes of a v1.billing.meter.error_report_triggered event (stripe-python 16,
# stripe/events/_v1_billing_meter_error_report_triggered_event.py; an open enum: anything else
# is counted as "other"). Those about the customer hold for every event sent to that customer.
METER_ERROR_CODES = (
    "archived_meter",
    "meter_event_customer_not_found",
    "meter_event_dimension_count_too_high",
    "meter_event_invalid_value",
    "meter_event_no_customer_defined",
    "meter_event_value_too_many_digits",
    "missing_dimension_payload_keys",
    "no_meter",
    "timestamp_in_future",
    "timestamp_too_far_in_past",
    "other",
)
CUSTOMER_ERROR_CODES = frozenset({"meter_event_customer_not_found"})

T = TypeVar("T")


def stripe_identifier(identifier: str, *, customer: str, generation: int) -> str:
    """The identifier sent to Stripe for an outbox record (see the module docstring)."""
    digest = hashlib.sha256(f"{customer}/{generation}".encode()).hexdigest()[:8]
    sent = f"{identifier}-{digest}"
    if len(sent) > MAX_IDENTIFIER_LENGTH:
        raise ValueError(f"identifier {sent!r} is longer than Stripe's 100 characters")
    return sent


def outbox_identifier(sent: str) -> str:
    """The outbox identifier inside an identifier sent to Stripe (the inverse of the suffix)."""
    base, _, digest = sent.rpartition("-")
    if not base or len(digest) != 8:
        return sent
    return base


def is_duplicate_identifier(status: int | None, message: str | None) -> bool:
    """Stripe's answer to an identifier it already counted: HTTP 400, type
    invalid_request_error, no error code, the message "An event already exists with identifier
    <identifier>." The usage is in Stripe already, so the record counts as sent."""
    return status == 400 and (message or "").strip().startswith(DUPLICATE_MESSAGE_PREFIX)


def window_deadline(hour_start: datetime) -> datetime:
    """The last moment a record for the hour starting at `hour_start` may still be sent."""
    return hour_start + STRIPE_WINDOW - WINDOW_SAFETY_MARGIN


def outside_window(hour_start: datetime, *, now: datetime) -> bool:
    """Stripe would refuse (or may refuse by the time it validates) this hour's event."""
    return now > window_deadline(hour_start)


def retry_delay(attempts: int, *, base: timedelta, cap: timedelta) -> timedelta:
    """Exponential backoff after the `attempts`-th failed attempt: base, 2 base, 4 base, ..."""
    if attempts < 1:
        return timedelta(0)
    return min(cap, base * (2 ** min(attempts - 1, 20)))


def batches(items: Sequence[T], size: int) -> list[Sequence[T]]:
    """`items` cut into consecutive runs of at most `size`."""
    if size < 1:
        raise ValueError("size must be at least 1")
    return [items[i : i + size] for i in range(0, len(items), size)]


def by_key(items: Iterable[T], key: Callable[[T], str]) -> dict[str, list[T]]:
    """`items` grouped by `key(item)`, each group in the order given."""
    groups: dict[str, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups
