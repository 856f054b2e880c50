"""The billing card: the domain's quota, subscription and invoice rules over one read."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from billing_core.clock import Clock, utc_now
from billing_core.errors import NotFound
from billing_core.periods import BillingPeriod, period_containing
from billing_core.plans import Plan, PlanCatalog
from billing_core.quota import Quota, compute_quota
from billing_engine.billing_view.store import BillingCardStore
from billing_engine.customers.store import OrgRecord
from billing_engine.invoicing.rules import InvoiceDraft, build_invoice
from billing_engine.subscriptions.rules import SubscriptionState, current_subscription


@dataclass(frozen=True)
class BillingCard:
    org: OrgRecord
    plan: Plan
    period: BillingPeriod
    quota: Quota
    subscription: SubscriptionState | None
    # The open period's invoice as it would be if the period closed now: this moment's usage
    # and credit balance, through the same function that writes the invoice at close.
    invoice_preview: InvoiceDraft
    as_of: datetime


class BillingCards:
    def __init__(self, *, store: BillingCardStore, catalog: PlanCatalog, clock: Clock = utc_now):
        self.store = store
        self.catalog = catalog
        self.clock = clock

    def card(self, org_id: str) -> BillingCard:
        now = self.clock()
        period = period_containing(now)
        inputs = self.store.card_inputs(org_id, period)
        if inputs is None:
            raise NotFound("org_id", f"no org with id {org_id!r}")
        plan = self.catalog.plan_or_default(inputs.org.plan)
        return BillingCard(
            org=inputs.org,
            plan=plan,
            period=period,
            quota=compute_quota(plan, used_minutes=inputs.used_minutes),
            subscription=current_subscription(inputs.subscriptions),
            invoice_preview=build_invoice(
                plan=plan,
                period_key=period.key,
                used_minutes=inputs.used_minutes,
                credits=inputs.credits,
            ),
            as_of=now,
        )
