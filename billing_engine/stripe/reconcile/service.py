"""Reconciliation runs: compare a period with Stripe (the rules are in `reconcile.rules`) and
keep every run's report and mismatches, so the engine's gauges show the last one wherever it ran.

Runs come from a person (the API, the CLI: trigger `manual`) or from housekeeping, once across
replicas: `run_after_close` reconciles a period as soon as it is closed (trigger
`period_close`), `run_daily` reconciles the last closed period once a day (trigger `daily`),
so a late Stripe invoice, a payment or a meter error report is seen within a day.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from billing_core.clock import Clock
from billing_core.periods import BillingPeriod, period_containing, period_from_field
from billing_engine.operability.metrics import EngineMetrics
from billing_engine.stripe.accounts import StripeAccounts
from billing_engine.stripe.client import PaymentProvider, ProviderInvoice
from billing_engine.stripe.reconcile.rules import (
    EXCLUDED_STATUSES,
    LISTING_SLACK,
    MismatchKind,
    OurInvoice,
    ReconciliationReport,
    compare,
)
from billing_engine.stripe.reconcile.store import ReconciliationRun, ReconciliationStore

log = logging.getLogger("billing_engine.reconciliation")


MANUAL, DAILY, PERIOD_CLOSE = "manual", "daily", "period_close"


class Reconciler:
    def __init__(
        self,
        *,
        store: ReconciliationStore,
        provider: PaymentProvider,
        metrics: EngineMetrics,
        clock: Clock,
        accounts: StripeAccounts | None = None,
        meter_event_name: str = "instance_minutes",
        is_period_closed: Callable[[str], bool] | None = None,
    ) -> None:
        self.store = store
        self.provider = provider
        self.metrics = metrics
        self.clock = clock
        self.accounts = accounts
        self.meter_event_name = meter_event_name
        self.is_period_closed = is_period_closed
        self._reconciled_after_close: set[str] = set()

    def _aggregated(self, ours: list[OurInvoice], period: BillingPeriod) -> dict[str, int] | None:
        """Stripe's meter total per linked org over the period; None when there is no meter
        to ask (no accounts, or no meter with our event name)."""
        if self.accounts is None:
            return None
        found: dict[str, int] = {}
        for our in ours:
            if not our.stripe_customer_id or our.status in EXCLUDED_STATUSES:
                continue
            total = self.accounts.meter_total(
                event_name=self.meter_event_name, customer=our.stripe_customer_id,
                start=period.start, end=period.end)
            if total is None:
                return None
            found[our.org_id] = total
        return found

    def run(self, period_key: str, *, trigger: str = MANUAL) -> ReconciliationReport:
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
        aggregated = self._aggregated(ours, period)
        mismatches, compared, unlinked, stripe_count = compare(
            period_key=key,
            ours=ours,
            theirs=theirs,
            org_by_customer={c: o for o, c in customers.items()},
            reported_minutes=reported,
            aggregated_minutes=aggregated,
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
            trigger=trigger,
            aggregated_checked=aggregated is not None,
        )
        self.store.save_reconciliation(
            ReconciliationRun(
                period=key,
                ran_at=report.ran_at,
                provider=report.provider,
                mismatches=len(mismatches),
                report=json.dumps(report.as_json()),
                trigger=trigger,
            ),
            mismatches,
        )
        self._set_gauges(report.counts_by_kind(), report.ran_at)
        log.info("reconciliation ran", extra={
            "period": key, "trigger": trigger, "mismatches": len(mismatches)})
        return report

    def _set_gauges(self, counts: dict[str, int], ran_at: datetime | None) -> None:
        self.metrics.reconciliation_mismatches.set(sum(counts.values()))
        for kind in MismatchKind:
            self.metrics.billing_reconciliation_mismatches.labels(kind.value).set(
                counts.get(kind.value, 0))
        self.metrics.billing_reconciliation_last_run.set(
            0 if ran_at is None else ran_at.timestamp())

    def refresh_gauge(self) -> None:
        last = self.store.last_reconciliation()
        if last is None or last.id is None:
            self._set_gauges({}, None)
            return
        self._set_gauges(self.store.kinds_by_run([last.id]).get(last.id, {}), last.ran_at)

    # -- scheduled (housekeeping jobs, once across replicas) --------------------------------

    def _last_closed(self) -> str | None:
        previous = period_containing(self.clock()).previous().key
        if self.is_period_closed is None or not self.is_period_closed(previous):
            return None
        return previous

    def run_after_close(self) -> ReconciliationReport | None:
        """Reconcile a period once, as soon as it is closed. A cheap check every other time."""
        period = self._last_closed()
        if period is None or period in self._reconciled_after_close:
            return None
        if self.store.has_run(period, trigger=PERIOD_CLOSE):
            self._reconciled_after_close.add(period)
            return None
        report = self.run(period, trigger=PERIOD_CLOSE)
        self._reconciled_after_close.add(period)
        return report

    def run_daily(self) -> ReconciliationReport | None:
        """Reconcile the last closed period again (its slot is a day)."""
        period = self._last_closed()
        return None if period is None else self.run(period, trigger=DAILY)


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
