"""Reconciliation runs: compare a period with Stripe (the rules are in `reconcile.rules`) and
keep every run's report, so the engine's gauge shows the last one wherever it ran."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

from billing_core.clock import Clock
from billing_core.periods import BillingPeriod, period_from_field
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.stripe.client import PaymentProvider, ProviderInvoice
from billing_engine.stripe.reconcile.rules import (
    LISTING_SLACK,
    ReconciliationReport,
    compare,
)
from billing_engine.stripe.reconcile.store import ReconciliationRun, ReconciliationStore


class Reconciler:
    def __init__(
        self,
        *,
        store: ReconciliationStore,
        provider: PaymentProvider,
        metrics: EngineMetrics,
        clock: Clock,
    ) -> None:
        self.store = store
        self.provider = provider
        self.metrics = metrics
        self.clock = clock

    def run(self, period_key: str) -> ReconciliationReport:
        """Compare, store the run (the engine's gauge shows the last one) and return the
        report. Raises InvalidRequest for a malformed period, ProviderError when Stripe
        fails."""
        period: BillingPeriod = period_from_field(period_key)
        key = period.key
        ours = self.store.invoices_for_period(key)
        theirs = self.provider.list_invoices(
            created_from=period.start, created_before=period.end + LISTING_SLACK
        )
        customers = self.store.customers_by_org()
        reported = self.store.sent_minutes_by_org(
            first_hour=period.start_minute // 60, end_hour=period.end_minute // 60
        )
        mismatches, compared, unlinked, stripe_count = compare(
            period_key=key,
            ours=ours,
            theirs=theirs,
            org_by_customer={c: o for o, c in customers.items()},
            reported_minutes=reported,
        )
        report = ReconciliationReport(
            period=key,
            provider=self.provider.name,
            simulated=self.provider.simulated,
            ran_at=self.clock(),
            our_invoices=compared,
            our_unlinked=unlinked,
            stripe_invoices=stripe_count,
            mismatches=tuple(mismatches),
        )
        self.store.save_reconciliation(
            ReconciliationRun(
                period=key,
                ran_at=report.ran_at,
                provider=report.provider,
                mismatches=len(mismatches),
                report=json.dumps(report.as_json()),
            )
        )
        self.metrics.reconciliation_mismatches.set(len(mismatches))
        return report

    def refresh_gauge(self) -> None:
        last = self.store.last_reconciliation()
        self.metrics.reconciliation_mismatches.set(0 if last is None else last.mismatches)


class MirroredInvoices:
    """The simulated provider's invoices: ours, as Stripe would show them had each been
    issued there unchanged (customer, total, period)."""

    def __init__(self, store: ReconciliationStore) -> None:
        self.store = store

    def __call__(self, created_from: datetime, created_before: datetime) -> list[ProviderInvoice]:
        # A period's invoice is "created" at the period's end, as Stripe's cycle invoices are.
        mirrored = []
        for our in self.store.invoices_starting_between(created_from - timedelta(days=31),
                                                        created_before):
            if not our.stripe_customer_id or not created_from <= our.period_end < created_before:
                continue
            mirrored.append(ProviderInvoice(
                id=f"in_sim_{our.id}",
                customer=our.stripe_customer_id,
                status=our.status if our.status in {"paid", "void"} else "open",
                total_cents=our.total_cents,
                currency=our.currency,
                created=our.period_end,
                period_start=our.period_start,
                period_end=our.period_end,
                metadata={"period": our.period},
            ))
        return mirrored
