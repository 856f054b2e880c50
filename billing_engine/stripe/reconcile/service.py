"""Reconciliation: our invoices and reported usage for one period against Stripe's invoices.

Which invoices are compared:
- ours: the period's invoices of orgs linked to a Stripe customer, void ones left out (an org
  without a customer is not billed through Stripe, so it is counted but not compared);
- Stripe's: invoices created from the period's start to 7 days after its end, void ones left out,
  that belong to the period: the month in their `metadata[period]` when set, otherwise the month
  their `period_start` falls in. Several Stripe invoices of one customer in the period are summed.

Each difference is one mismatch:
- missing_at_stripe: we billed a customer something, Stripe has no invoice for them;
- missing_here: Stripe billed a customer something, we have no invoice for them;
- amount_differs: both exist and the totals (integer cents) differ;
- usage_not_reported / usage_over_reported: the minutes on our invoice differ from the minutes
  Stripe accepted from the usage outbox for the period's hours.
A missing counterpart of a zero total is not a mismatch: there is nothing to collect.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from billing_core.periods import BillingPeriod, parse_period_key, period_containing
from billing_engine.stripe.client import PaymentProvider, ProviderInvoice
from billing_engine.stripe.meters.store import MeterStore, OurInvoice, ReconciliationRun

# Stripe creates a period's invoice at (or shortly after) its end; a week covers the stragglers.
LISTING_SLACK = timedelta(days=7)
EXCLUDED_STATUSES = frozenset({"void"})


class MismatchKind(StrEnum):
    MISSING_AT_STRIPE = "missing_at_stripe"
    MISSING_HERE = "missing_here"
    AMOUNT_DIFFERS = "amount_differs"
    USAGE_NOT_REPORTED = "usage_not_reported"
    USAGE_OVER_REPORTED = "usage_over_reported"


@dataclass(frozen=True)
class Mismatch:
    kind: MismatchKind
    org_id: str | None
    stripe_customer_id: str | None
    our_invoice_id: int | None
    stripe_invoice_ids: tuple[str, ...]
    ours: int | None  # cents, or minutes for the usage kinds
    stripe: int | None
    detail: str


@dataclass(frozen=True)
class ReconciliationReport:
    period: str
    provider: str
    simulated: bool
    ran_at: datetime
    our_invoices: int
    our_unlinked: int
    stripe_invoices: int
    mismatches: tuple[Mismatch, ...]

    @property
    def clean(self) -> bool:
        return not self.mismatches

    def as_json(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "provider": self.provider,
            "simulated": self.simulated,
            "ran_at": self.ran_at.isoformat(),
            "our_invoices": self.our_invoices,
            "our_invoices_not_linked": self.our_unlinked,
            "stripe_invoices": self.stripe_invoices,
            "mismatch_count": len(self.mismatches),
            "mismatches": [_mismatch_json(m) for m in self.mismatches],
            "note": SIMULATED_NOTE if self.simulated else None,
        }

    def render_text(self) -> str:
        against = (
            "the SIMULATED payment provider (no STRIPE_SECRET_KEY)" if self.simulated else "Stripe"
        )
        lines = [f"Reconciliation of {self.period} against {against}"]
        if self.simulated:
            lines.append(f"  note: {SIMULATED_NOTE}")
        lines += [
            f"  our invoices: {self.our_invoices} compared, {self.our_unlinked} of orgs without "
            "a Stripe customer (not compared)",
            f"  Stripe's invoices for the period: {self.stripe_invoices}",
            f"  mismatches: {len(self.mismatches)}",
        ]
        for m in self.mismatches:
            who = f"{m.org_id or '(no org)'} ({m.stripe_customer_id or 'no customer'})"
            lines.append(f"  - {m.kind.value:<20} {who}: {m.detail}")
        if self.clean:
            lines.append("  clean: every compared invoice and its reported usage agree")
        return "\n".join(lines)


def _mismatch_json(mismatch: Mismatch) -> dict[str, Any]:
    fields = asdict(mismatch)
    fields["kind"] = mismatch.kind.value
    fields["stripe_invoice_ids"] = list(mismatch.stripe_invoice_ids)
    return fields


SIMULATED_NOTE = (
    "the simulated provider's invoices mirror our own, so invoice amounts always agree here; "
    "the usage check compares our invoices with the usage it accepted"
)


def period_of(invoice: ProviderInvoice) -> str | None:
    """The billing period a Stripe invoice belongs to."""
    named = invoice.metadata.get("period")
    if named:
        return named
    anchor = invoice.period_start or invoice.created
    return period_containing(anchor).key


def compare(
    *,
    period_key: str,
    ours: Iterable[OurInvoice],
    theirs: Iterable[ProviderInvoice],
    org_by_customer: dict[str, str],
    reported_minutes: dict[str, int],
) -> tuple[list[Mismatch], int, int, int]:
    """Pure: (mismatches, our invoices compared, ours not linked, Stripe's invoices compared)."""
    billed = [o for o in ours if o.status not in EXCLUDED_STATUSES]
    linked = [o for o in billed if o.stripe_customer_id]
    unlinked = len(billed) - len(linked)
    stripe_side = [
        t for t in theirs
        if t.status not in EXCLUDED_STATUSES and t.customer and period_of(t) == period_key
    ]
    by_customer: dict[str, list[ProviderInvoice]] = defaultdict(list)
    for invoice in stripe_side:
        assert invoice.customer is not None
        by_customer[invoice.customer].append(invoice)

    mismatches: list[Mismatch] = []
    seen: set[str] = set()
    for our in linked:
        customer = our.stripe_customer_id
        assert customer is not None
        seen.add(customer)
        found = by_customer.get(customer, [])
        ids = tuple(sorted(i.id for i in found))
        total = sum(i.total_cents for i in found)
        if not found:
            if our.total_cents:
                mismatches.append(Mismatch(
                    MismatchKind.MISSING_AT_STRIPE, our.org_id, customer, our.id, (),
                    our.total_cents, None,
                    f"we billed {our.total_cents} cents (invoice {our.id}); Stripe has no "
                    "invoice for this customer in the period",
                ))
        elif total != our.total_cents:
            mismatches.append(Mismatch(
                MismatchKind.AMOUNT_DIFFERS, our.org_id, customer, our.id, ids,
                our.total_cents, total,
                f"we billed {our.total_cents} cents (invoice {our.id}), Stripe {total} cents "
                f"({', '.join(ids)}): {total - our.total_cents:+d} cents",
            ))
        accepted = reported_minutes.get(our.org_id, 0)
        if accepted != our.used_minutes:
            kind = (
                MismatchKind.USAGE_NOT_REPORTED
                if accepted < our.used_minutes
                else MismatchKind.USAGE_OVER_REPORTED
            )
            mismatches.append(Mismatch(
                kind, our.org_id, customer, our.id, ids, our.used_minutes, accepted,
                f"invoice {our.id} bills {our.used_minutes} minutes, Stripe accepted {accepted} "
                "from the usage outbox (see GET /debug/meters/pending)",
            ))
    for customer, found in sorted(by_customer.items()):
        if customer in seen:
            continue
        total = sum(i.total_cents for i in found)
        if total:
            ids = tuple(sorted(i.id for i in found))
            mismatches.append(Mismatch(
                MismatchKind.MISSING_HERE, org_by_customer.get(customer), customer, None, ids,
                None, total,
                f"Stripe billed {total} cents ({', '.join(ids)}); we have no invoice for "
                "this customer in the period",
            ))
    return mismatches, len(linked), unlinked, len(stripe_side)


class Reconciler:
    def __init__(
        self, *, store: MeterStore, provider: PaymentProvider, clock: Callable[[], datetime]
    ) -> None:
        self.store = store
        self.provider = provider
        self.clock = clock

    def run(self, period_key: str) -> ReconciliationReport:
        """Compare, store the run (the engine's gauge shows the last one) and return the
        report. Raises ValueError for a malformed period, ProviderError when Stripe fails."""
        period: BillingPeriod = parse_period_key(period_key)
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
        return report


class MirroredInvoices:
    """The simulated provider's invoices: ours, as Stripe would show them had each been
    issued there unchanged (customer, total, period)."""

    def __init__(self, store: MeterStore) -> None:
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


def reconcile_from_cli(settings: Any, period_key: str, *, as_json: bool = False) -> int:
    """`python -m billing_engine reconcile --period YYYY-MM`: prints the report; exit code 0
    when clean, 1 when there are mismatches, 2 when the run could not be made."""
    import sys

    from billing_engine.customers.service import utc_now
    from billing_engine.db import DatabaseUnavailable, create_database
    from billing_engine.stripe.circuit_breaker import CircuitBreaker
    from billing_engine.stripe.client import ProviderError, provider_from_settings

    try:
        parse_period_key(period_key)
    except ValueError as exc:
        print(f"--period: {exc}", file=sys.stderr)
        return 2
    database = create_database(settings.database_url)
    try:
        store = MeterStore(database)
        provider = provider_from_settings(
            secret_key=settings.stripe_secret_key,
            api_base=settings.stripe_api_base,
            timeout_seconds=settings.stripe_timeout_seconds,
            breaker=CircuitBreaker(clock=lambda: utc_now().timestamp()),
            invoice_source=MirroredInvoices(store),
        )
        try:
            report = Reconciler(store=store, provider=provider, clock=utc_now).run(period_key)
        except ProviderError as exc:
            print(f"reconciliation failed: Stripe: {exc.describe()}", file=sys.stderr)
            return 2
        except DatabaseUnavailable as exc:
            print(f"reconciliation failed: database unreachable: {exc}", file=sys.stderr)
            return 2
        print(json.dumps(report.as_json(), indent=2) if as_json else report.render_text())
        return 0 if report.clean else 1
    finally:
        database.dispose()
