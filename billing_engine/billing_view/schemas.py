"""The billing card as the API shows it."""

from __future__ import annotations

from pydantic import Field

from billing_core.http import ResponseModel, Timestamp
from billing_core.quota import hours
from billing_core.schemas import PeriodOut, period_out
from billing_engine.billing_view.service import BillingCard
from billing_engine.customers.schemas import OrgOut, org_out
from billing_engine.invoicing.schemas import PREVIEW, InvoiceOut, invoice_out
from billing_engine.plans.schemas import PlanOut, plan_out
from billing_engine.subscriptions.schemas import SubscriptionOut, subscription_out


class UsageOut(ResponseModel):
    included_hours: float
    used_hours: float
    remaining_hours: float
    overage_hours: float
    included_minutes: int
    used_minutes: int
    remaining_minutes: int
    overage_minutes: int
    percent_used: float


class ChargesOut(ResponseModel):
    currency: str
    base_fee_cents: int
    estimated_overage_cents: int
    estimated_total_cents: int


class BillingCardOut(ResponseModel):
    org: OrgOut
    plan: PlanOut
    period: PeriodOut
    usage: UsageOut
    charges: ChargesOut
    thresholds_crossed: list[int] = Field(description="Budget thresholds reached: 50, 90, 100")
    as_of: Timestamp
    subscription: SubscriptionOut | None = Field(description="Null without a Stripe subscription")
    invoice_preview: InvoiceOut


def billing_card_out(card: BillingCard) -> BillingCardOut:
    quota = card.quota
    return BillingCardOut(
        org=org_out(card.org),
        plan=plan_out(card.plan),
        period=period_out(card.period),
        usage=UsageOut(
            included_hours=hours(quota.included_minutes),
            used_hours=hours(quota.used_minutes),
            remaining_hours=hours(quota.remaining_minutes),
            overage_hours=hours(quota.overage_minutes),
            included_minutes=quota.included_minutes,
            used_minutes=quota.used_minutes,
            remaining_minutes=quota.remaining_minutes,
            overage_minutes=quota.overage_minutes,
            percent_used=quota.percent_used,
        ),
        charges=ChargesOut(
            currency="usd",
            base_fee_cents=quota.base_fee_cents,
            estimated_overage_cents=quota.estimated_overage_cents,
            estimated_total_cents=quota.estimated_total_cents,
        ),
        thresholds_crossed=list(quota.thresholds_crossed),
        as_of=card.as_of,
        subscription=None if card.subscription is None else subscription_out(card.subscription),
        invoice_preview=invoice_out(
            card.invoice_preview, org_id=card.org.id, period=card.period, status=PREVIEW
        ),
    )
