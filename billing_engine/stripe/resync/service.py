"""Resync one org from Stripe, for support: when the console and Stripe disagree (a webhook
lost, delivered to the wrong endpoint, or failed for good), pull what Stripe holds now and
apply it through the same subscription rules the webhooks use.

1. `GET /v1/customers/{id}`: the customer exists, its balance (credits not yet used);
2. `GET /v1/subscriptions?customer=&status=all`: each subscription stored as Stripe shows it
   now, stamped with the time of the resync, so an older webhook delivered afterwards is stale;
3. the plan recomputed (`plan_after_change`) and the org's entitlements dropped from the cache
   and computed again;
4. `GET /v1/invoices?customer=`: the latest ten, each linked to our invoice of its period.

Every call goes through the Stripe client and its breaker; the route writes the audit rows.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from billing_core.clock import Clock, utc_now
from billing_core.errors import Conflict
from billing_core.periods import period_containing
from billing_core.plans import PlanCatalog
from billing_engine.customers.service import Customers
from billing_engine.entitlements.rules import Entitlements
from billing_engine.entitlements.service import EntitlementsService
from billing_engine.invoicing.store import InvoiceStore
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.stripe.accounts import StripeAccounts
from billing_engine.stripe.client import ProviderError
from billing_engine.stripe.resync.store import Applied, ResyncStore
from billing_engine.stripe.webhooks.payloads import object_id, subscription_state
from billing_engine.subscriptions.rules import plan_after_change, plan_for_prices

log = logging.getLogger("billing_engine.stripe.resync")
INVOICES_PULLED = 10
# Stripe's invoice statuses that are also ours (the rest leave our status alone).
OUR_STATUS = {"paid": "paid", "void": "void"}


@dataclass(frozen=True)
class InvoiceSeen:
    id: str
    number: str | None
    status: str | None
    period: str
    total_cents: int
    amount_due_cents: int
    hosted_invoice_url: str | None
    linked: bool  # our invoice of that period now names it


@dataclass(frozen=True)
class ResyncResult:
    org_id: str
    stripe_customer_id: str
    customer_deleted: bool
    customer_balance_cents: int
    applied: Applied
    invoices: tuple[InvoiceSeen, ...]
    entitlements: Entitlements
    warnings: tuple[str, ...]
    at: datetime

    @property
    def changed(self) -> bool:
        return (self.applied.plan_before != self.applied.plan_after
                or any(s.changed for s in self.applied.subscriptions))

    def change_summary(self) -> dict[str, Any]:
        """What the audit row records."""
        return {
            "resync": {
                "stripe_customer_id": self.stripe_customer_id,
                "plan": [self.applied.plan_before, self.applied.plan_after],
                "subscriptions": [
                    {"id": s.subscription_id, "status": [s.status_before, s.status_after]}
                    for s in self.applied.subscriptions if s.changed
                ],
            }
        }


def _period_key(invoice: dict[str, Any]) -> str:
    named = (invoice.get("metadata") or {}).get("period")
    if isinstance(named, str) and named:
        return named
    anchor = invoice.get("period_start") or invoice.get("created") or 0
    return period_containing(datetime.fromtimestamp(int(anchor), UTC)).key


class Resync:
    def __init__(
        self,
        *,
        store: ResyncStore,
        invoices: InvoiceStore,
        accounts: StripeAccounts,
        customers: Customers,
        entitlements: EntitlementsService,
        catalog: PlanCatalog,
        metrics: EngineMetrics,
        clock: Clock = utc_now,
    ) -> None:
        self.store = store
        self.invoices = invoices
        self.accounts = accounts
        self.customers = customers
        self.entitlements = entitlements
        self.catalog = catalog
        self.metrics = metrics
        self.clock = clock

    def resync(self, org_id: str) -> ResyncResult:
        """Raises NotFound (no such org), Conflict (not linked, or Stripe does not know its
        customer) or ProviderError (Stripe failed: nothing was changed)."""
        org = self.customers.require(org_id)
        customer_id = org.stripe_customer_id
        if not customer_id:
            raise Conflict("org_id", f"{org_id} is not linked to a Stripe customer: there is "
                           "nothing in Stripe to resync from")
        try:
            customer = self.accounts.customer(customer_id)
            found = self.accounts.subscriptions(customer_id)
            pulled = self.accounts.recent_invoices(customer_id, limit=INVOICES_PULLED)
        except ProviderError as exc:
            self.metrics.stripe_resyncs.labels("failed").inc()
            if exc.http_status == 404:
                raise Conflict("org_id", f"its Stripe customer {customer_id} does not exist in "
                               "Stripe (wrong account or mode?)") from None
            raise
        now = self.clock()
        warnings: list[str] = []
        states = []
        for obj in found:
            if object_id(obj.get("customer")) != customer_id:
                continue
            state = subscription_state(obj, event_created=now)
            if state.live and plan_for_prices(self.catalog, state.price_ids) is None:
                warnings.append(f"subscription {state.subscription_id} has prices "
                                f"{list(state.price_ids)} that map to no plan: the plan was "
                                "left alone (set stripe_price_id in the plans file)")
            states.append(state)

        def plan_of(state: Any) -> str | None:
            plan = plan_for_prices(self.catalog, state.price_ids)
            return None if plan is None else plan.code

        applied = self.store.apply(
            org_id, states, plan_of=plan_of,
            plan_for_org=lambda held: plan_after_change(self.catalog, held),
            source=f"resync:{now.strftime('%Y%m%dT%H%M%SZ')}", now=now)
        seen = tuple(self._invoice(org_id, obj) for obj in pulled)
        self.customers.changed(org_id)  # drops the cached entitlements
        entitlements = self.entitlements.recompute(org_id)
        deleted = bool(customer.get("deleted"))
        if deleted:
            warnings.append(f"Stripe customer {customer_id} is deleted: link the org to its "
                            "new customer")
        result = ResyncResult(
            org_id=org_id, stripe_customer_id=customer_id, customer_deleted=deleted,
            customer_balance_cents=int(customer.get("balance") or 0),
            applied=applied, invoices=seen, entitlements=entitlements,
            warnings=tuple(warnings), at=now)
        self.metrics.stripe_resyncs.labels("changed" if result.changed else "unchanged").inc()
        log.info("org resynced from Stripe", extra={
            "org_id": org_id, "changed": result.changed, "plan": applied.plan_after})
        return result

    def _invoice(self, org_id: str, obj: dict[str, Any]) -> InvoiceSeen:
        invoice_id = str(obj["id"])
        period = _period_key(obj)
        status = obj.get("status")
        linked = self.invoices.record_stripe_invoice(
            org_id=org_id, period_key=period, stripe_invoice_id=invoice_id,
            status=OUR_STATUS.get(str(status)))
        return InvoiceSeen(
            id=invoice_id,
            number=obj.get("number"),
            status=status,
            period=period,
            total_cents=int(obj.get("total") or 0),
            amount_due_cents=int(obj.get("amount_due") or 0),
            hosted_invoice_url=obj.get("hosted_invoice_url"),
            linked=linked,
        )
