"""A resync's answer: what Stripe holds for the org and what changed here."""

from __future__ import annotations

from pydantic import Field

from billing_core.http import ResponseModel, Timestamp
from billing_engine.stripe.resync.service import ResyncResult


class SubscriptionSyncOut(ResponseModel):
    id: str
    status_before: str | None = Field(description="Null when the engine did not hold it")
    status_after: str
    changed: bool


class StripeInvoiceOut(ResponseModel):
    id: str
    number: str | None
    status: str | None = Field(description="Stripe's: draft, open, paid, uncollectible, void")
    period: str = Field(description="The billing period (YYYY-MM) it belongs to")
    total_cents: int
    amount_due_cents: int = Field(description="After the customer's balance (credits)")
    hosted_invoice_url: str | None
    linked: bool = Field(description="Our invoice of that period now names it")


class ResyncOut(ResponseModel):
    org_id: str
    stripe_customer_id: str
    customer_deleted: bool
    customer_balance_cents: int = Field(
        description="Stripe's customer balance: negative is credit not used yet")
    plan_before: str
    plan_after: str
    effective_plan: str = Field(description="The plan whose limits apply now")
    subscription_status: str = Field(description="What the entitlements count the org as")
    changed: bool
    subscriptions: list[SubscriptionSyncOut]
    invoices: list[StripeInvoiceOut] = Field(description="Stripe's latest ten, newest first")
    warnings: list[str]
    resynced_at: Timestamp


def resync_out(result: ResyncResult) -> ResyncOut:
    return ResyncOut(
        org_id=result.org_id,
        stripe_customer_id=result.stripe_customer_id,
        customer_deleted=result.customer_deleted,
        customer_balance_cents=result.customer_balance_cents,
        plan_before=result.applied.plan_before,
        plan_after=result.applied.plan_after,
        effective_plan=result.entitlements.effective_plan,
        subscription_status=result.entitlements.subscription_status.value,
        changed=result.changed,
        subscriptions=[
            SubscriptionSyncOut(id=s.subscription_id, status_before=s.status_before,
                                status_after=s.status_after, changed=s.changed)
            for s in result.applied.subscriptions
        ],
        invoices=[
            StripeInvoiceOut(id=i.id, number=i.number, status=i.status, period=i.period,
                             total_cents=i.total_cents, amount_due_cents=i.amount_due_cents,
                             hosted_invoice_url=i.hosted_invoice_url, linked=i.linked)
            for i in result.invoices
        ],
        warnings=list(result.warnings),
        resynced_at=result.at,
    )
