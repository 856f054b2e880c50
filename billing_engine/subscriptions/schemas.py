"""An org's current Stripe subscription, as the billing card shows it."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import Field

from billing_core.http import ResponseModel, Timestamp
from billing_engine.subscriptions.rules import SubscriptionState, entitlement_status


class SubscriptionOut(ResponseModel):
    id: str
    status: str = Field(description="Stripe's status: active, trialing, past_due, canceled, ...")
    entitlement_status: str = Field(description="What the status means for the org's limits")
    current_period_start: Timestamp | None
    current_period_end: Timestamp | None
    cancel_at_period_end: bool
    stripe_customer_id: str | None


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def subscription_out(current: SubscriptionState) -> SubscriptionOut:
    return SubscriptionOut(
        id=current.subscription_id,
        status=current.status,
        entitlement_status=entitlement_status(current.status).value,
        current_period_start=_aware(current.current_period_start),
        current_period_end=_aware(current.current_period_end),
        cancel_at_period_end=current.cancel_at_period_end,
        stripe_customer_id=current.customer_id,
    )
