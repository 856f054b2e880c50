"""Reconciliation: our invoices and reported usage for one period against Stripe's.

Which invoices are compared:
- ours: the period's invoices of orgs linked to a Stripe customer, void ones left out (an org
  without a customer is not billed through Stripe, so it is counted but not compared);
- Stripe's: invoices created from the period's start to 7 days after its end, void ones left out,
  that belong to the period: the month in their `metadata[period]` when set, otherwise the month
  their `period_start` falls in. Several Stripe invoices of one customer in the period are summed.

Per customer and period three usage numbers meet: the minutes on our invoice (billed), the
minutes Stripe accepted from the usage outbox for the period's hours (sent), and the minutes
Stripe's meter aggregated for the customer over the period (event summaries). Money is compared
after credits on both sides: our invoice's total (credits applied) against what Stripe asks the
customer to pay (`amount_due`: the total less the customer's balance, where our credits go).

Each difference is one mismatch:
- missing_at_stripe: we billed a customer something, Stripe has no invoice for them;
- missing_here: Stripe billed a customer something, we have no invoice for them;
- amount_differs: both exist and the amounts due (integer cents) differ;
- usage_not_reported / usage_over_reported: the minutes on our invoice differ from the minutes
  Stripe accepted from the usage outbox for the period's hours;
- usage_not_aggregated / usage_over_aggregated: Stripe's meter holds fewer (or more) minutes for
  the customer than it accepted from us: events refused after the 200 by its asynchronous
  validation, or sent for this customer from somewhere else.
A missing counterpart of a zero total is not a mismatch: there is nothing to collect. A Stripe
invoice still in `draft` (Stripe finalizes a cycle's invoice about an hour after creating it, and
applies the customer's balance only then) is not compared for money yet: the daily run does it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from billing_core.periods import period_containing

if TYPE_CHECKING:  # the adapter's value type; this module never calls Stripe
    from billing_engine.stripe.client import ProviderInvoice

# Stripe creates a period's invoice at (or shortly after) its end; a week covers the stragglers.
LISTING_SLACK = timedelta(days=7)
EXCLUDED_STATUSES = frozenset({"void"})


@dataclass(frozen=True)
class OurInvoice:
    id: int
    org_id: str
    period: str  # "YYYY-MM"
    period_start: datetime
    period_end: datetime
    closed_at: datetime
    stripe_customer_id: str | None  # the org's customer now
    stripe_invoice_id: str | None
    status: str
    currency: str
    used_minutes: int
    total_cents: int


class MismatchKind(StrEnum):
    MISSING_AT_STRIPE = "missing_at_stripe"
    MISSING_HERE = "missing_here"
    AMOUNT_DIFFERS = "amount_differs"
    USAGE_NOT_REPORTED = "usage_not_reported"
    USAGE_OVER_REPORTED = "usage_over_reported"
    USAGE_NOT_AGGREGATED = "usage_not_aggregated"
    USAGE_OVER_AGGREGATED = "usage_over_aggregated"


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
    # Every number of the org for the period, for the drill-down (None: not known).
    billed_minutes: int | None = None
    sent_minutes: int | None = None
    stripe_minutes: int | None = None
    our_cents: int | None = None
    stripe_cents: int | None = None


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
    trigger: str = "manual"  # manual, daily or period_close
    aggregated_checked: bool = False  # Stripe's meter summaries were compared

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
            "trigger": self.trigger,
            "aggregated_checked": self.aggregated_checked,
        }

    def counts_by_kind(self) -> dict[str, int]:
        counts = dict.fromkeys((k.value for k in MismatchKind), 0)
        for mismatch in self.mismatches:
            counts[mismatch.kind.value] += 1
        return counts

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


def _amount_due(invoices: Iterable[ProviderInvoice]) -> int:
    return sum(i.total_cents if i.amount_due_cents is None else i.amount_due_cents
               for i in invoices)


def compare(
    *,
    period_key: str,
    ours: Iterable[OurInvoice],
    theirs: Iterable[ProviderInvoice],
    org_by_customer: dict[str, str],
    reported_minutes: dict[str, int],
    aggregated_minutes: dict[str, int] | None = None,
) -> tuple[list[Mismatch], int, int, int]:
    """Pure: (mismatches, our invoices compared, ours not linked, Stripe's invoices compared).

    `aggregated_minutes`: Stripe's meter total per org (None: not compared)."""
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
        due = _amount_due(found) if found else None
        sent = reported_minutes.get(our.org_id, 0)
        aggregated = None if aggregated_minutes is None else aggregated_minutes.get(our.org_id)
        numbers = {"billed_minutes": our.used_minutes, "sent_minutes": sent,
                   "stripe_minutes": aggregated, "our_cents": our.total_cents,
                   "stripe_cents": due}
        if any(i.status == "draft" for i in found):
            pass  # Stripe applies the balance when it finalizes: compared by a later run
        elif due is None:
            if our.total_cents:
                mismatches.append(Mismatch(
                    MismatchKind.MISSING_AT_STRIPE, our.org_id, customer, our.id, (),
                    our.total_cents, None,
                    f"we billed {our.total_cents} cents (invoice {our.id}); Stripe has no "
                    "invoice for this customer in the period", **numbers,
                ))
        elif due != our.total_cents:
            mismatches.append(Mismatch(
                MismatchKind.AMOUNT_DIFFERS, our.org_id, customer, our.id, ids,
                our.total_cents, due,
                f"we billed {our.total_cents} cents after credits (invoice {our.id}), Stripe "
                f"asks {due} cents after the customer's balance ({', '.join(ids)}): "
                f"{due - our.total_cents:+d} cents", **numbers,
            ))
        if sent != our.used_minutes:
            kind = (
                MismatchKind.USAGE_NOT_REPORTED
                if sent < our.used_minutes
                else MismatchKind.USAGE_OVER_REPORTED
            )
            mismatches.append(Mismatch(
                kind, our.org_id, customer, our.id, ids, our.used_minutes, sent,
                f"invoice {our.id} bills {our.used_minutes} minutes, Stripe accepted {sent} "
                "from the usage outbox (see GET /debug/meters/pending)", **numbers,
            ))
        if aggregated is not None and aggregated != sent:
            kind = (
                MismatchKind.USAGE_NOT_AGGREGATED
                if aggregated < sent
                else MismatchKind.USAGE_OVER_AGGREGATED
            )
            mismatches.append(Mismatch(
                kind, our.org_id, customer, our.id, ids, sent, aggregated,
                f"Stripe accepted {sent} minutes from us for the period, its meter aggregated "
                f"{aggregated} for {customer}", **numbers,
            ))
    for customer, found in sorted(by_customer.items()):
        if customer in seen:
            continue
        due = _amount_due(found)
        if due:
            ids = tuple(sorted(i.id for i in found))
            mismatches.append(Mismatch(
                MismatchKind.MISSING_HERE, org_by_customer.get(customer), customer, None, ids,
                None, due,
                f"Stripe billed {due} cents ({', '.join(ids)}); we have no invoice for "
                "this customer in the period", stripe_cents=due,
            ))
    return mismatches, len(linked), unlinked, len(stripe_side)
