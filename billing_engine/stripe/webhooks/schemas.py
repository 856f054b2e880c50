"""Stripe deliveries and the inbox, as the API shows them."""

from __future__ import annotations

from pydantic import Field

from billing_core.http import ErrorBody, FieldError, ResponseModel, Timestamp


class DeliveryOut(ResponseModel):
    """What became of one delivery (or replay) of a Stripe event."""

    event_id: str
    type: str
    outcome: str = Field(description="handled, duplicate, ignored or failed")
    status: str = Field(description="The inbox status after this delivery")
    effect: str | None = Field(default=None, description="What it changed, in words")
    error: FieldError | None = Field(default=None, description="Why it failed, when it did")


class StoredEventOut(ResponseModel):
    event_id: str
    type: str
    status: str = Field(description="pending, handled, ignored or failed")
    created: Timestamp
    livemode: bool
    customer_id: str | None
    org_id: str | None
    attempts: int
    last_error: str | None
    effect: str | None
    received_at: Timestamp
    last_attempt_at: Timestamp | None
    handled_at: Timestamp | None


class FailingEventsOut(ResponseModel):
    count: int
    oldest_received_at: Timestamp | None
    events: list[StoredEventOut]
    hint: str
    as_of: Timestamp


class DeliveryFailedOut(ErrorBody):
    """A delivery or a replay that did not take effect: the error, and the delivery as it
    ended (the event is stored either way)."""

    event: DeliveryOut
