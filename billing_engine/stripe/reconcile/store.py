"""What reconciliation reads and keeps: our invoices with their org's Stripe customer, the
minutes Stripe accepted from the usage outbox, and the report of every run."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement

from billing_core.sql import utc
from billing_engine.customers.tables import orgs
from billing_engine.db.database import Store
from billing_engine.invoicing.tables import invoices
from billing_engine.stripe.meters.store import SENT
from billing_engine.stripe.meters.tables import meter_outbox
from billing_engine.stripe.reconcile.rules import OurInvoice
from billing_engine.stripe.reconcile.tables import reconciliation_runs


@dataclass(frozen=True)
class ReconciliationRun:
    period: str
    ran_at: datetime
    provider: str
    mismatches: int
    report: str


class ReconciliationStore(Store):
    def sent_minutes_by_org(self, *, first_hour: int, end_hour: int) -> dict[str, int]:
        """Minutes Stripe accepted per org for hours in [first_hour, end_hour)."""
        o = meter_outbox.c
        query = (
            select(o.org_id, func.sum(o.minutes).label("minutes"))
            .where(o.state == SENT, o.hour >= first_hour, o.hour < end_hour)
            .group_by(o.org_id)
        )
        return {r.org_id: int(r.minutes) for r in self._run(lambda c: c.execute(query).all())}


    def invoices_for_period(self, period_key: str) -> list[OurInvoice]:
        return self._invoices(invoices.c.period == period_key)

    def invoices_starting_between(self, start: datetime, end: datetime) -> list[OurInvoice]:
        return self._invoices(invoices.c.period_start >= start, invoices.c.period_start < end)

    def _invoices(self, *conditions: ColumnElement[bool]) -> list[OurInvoice]:
        i = invoices.c
        query = (
            select(
                i.id, i.org_id, i.period, i.period_start, i.period_end, i.stripe_invoice_id,
                i.status, i.currency, i.used_minutes, i.total_cents, i.closed_at,
                orgs.c.stripe_customer_id,
            )
            .outerjoin(orgs, orgs.c.id == i.org_id)
            .where(*conditions)
            .order_by(i.org_id, i.period)
        )
        return [
            OurInvoice(
                id=int(r.id),
                org_id=r.org_id,
                period=r.period,
                period_start=utc(r.period_start),
                period_end=utc(r.period_end),
                closed_at=utc(r.closed_at),
                stripe_customer_id=r.stripe_customer_id,
                stripe_invoice_id=r.stripe_invoice_id,
                status=r.status,
                currency=r.currency,
                used_minutes=int(r.used_minutes),
                total_cents=int(r.total_cents),
            )
            for r in self._run(lambda c: c.execute(query).all())
        ]

    def customers_by_org(self) -> dict[str, str]:
        query = select(orgs.c.id, orgs.c.stripe_customer_id).where(
            orgs.c.stripe_customer_id.is_not(None)
        )
        return {r.id: r.stripe_customer_id for r in self._run(lambda c: c.execute(query).all())}

    def save_reconciliation(self, run: ReconciliationRun) -> None:
        stmt = reconciliation_runs.insert().values(
            period=run.period,
            ran_at=run.ran_at,
            provider=run.provider,
            mismatches=run.mismatches,
            report=run.report,
        )
        self._run(lambda c: c.execute(stmt), write=True)

    def last_reconciliation(self) -> ReconciliationRun | None:
        r = reconciliation_runs.c
        query = select(reconciliation_runs).order_by(r.ran_at.desc(), r.id.desc()).limit(1)
        row = self._run(lambda c: c.execute(query).first())
        if row is None:
            return None
        return ReconciliationRun(
            period=row.period,
            ran_at=utc(row.ran_at),
            provider=row.provider,
            mismatches=int(row.mismatches),
            report=row.report,
        )
