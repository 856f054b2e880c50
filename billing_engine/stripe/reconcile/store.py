"""What reconciliation reads and keeps: our invoices with their org's Stripe customer, the
minutes Stripe accepted from the usage outbox, and the report of every run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.sql.elements import ColumnElement

from billing_core.sql import utc
from billing_engine.customers.tables import orgs
from billing_engine.db.database import Store
from billing_engine.invoicing.tables import invoices
from billing_engine.stripe.meters.store import SENT
from billing_engine.stripe.meters.tables import meter_outbox
from billing_engine.stripe.reconcile.rules import Mismatch, MismatchKind, OurInvoice
from billing_engine.stripe.reconcile.tables import reconciliation_mismatches, reconciliation_runs


@dataclass(frozen=True)
class ReconciliationRun:
    period: str
    ran_at: datetime
    provider: str
    mismatches: int
    report: str
    trigger: str = "manual"
    id: int | None = None  # set once stored


def _run_of(row: Any) -> ReconciliationRun:
    return ReconciliationRun(
        period=row.period,
        ran_at=utc(row.ran_at),
        provider=row.provider,
        mismatches=int(row.mismatches),
        report=row.report,
        trigger=row.trigger,
        id=int(row.id),
    )


def _mismatch_of(row: Any) -> Mismatch:
    def number(value: Any) -> int | None:
        return None if value is None else int(value)

    return Mismatch(
        kind=MismatchKind(row.kind),
        org_id=row.org_id,
        stripe_customer_id=row.stripe_customer_id,
        our_invoice_id=number(row.our_invoice_id),
        stripe_invoice_ids=tuple((row.stripe_invoice_ids or "").split()),
        ours=None,
        stripe=None,
        detail=row.detail,
        billed_minutes=number(row.billed_minutes),
        sent_minutes=number(row.sent_minutes),
        stripe_minutes=number(row.stripe_minutes),
        our_cents=number(row.our_cents),
        stripe_cents=number(row.stripe_cents),
    )


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

    def save_reconciliation(
        self, run: ReconciliationRun, found: Sequence[Mismatch] = ()
    ) -> int:
        """The run and one row per mismatch, in one transaction; returns the run's id."""
        stmt = (
            self._insert(reconciliation_runs)
            .values(
                period=run.period,
                ran_at=run.ran_at,
                provider=run.provider,
                mismatches=run.mismatches,
                report=run.report,
                trigger=run.trigger,
            )
            .returning(reconciliation_runs.c.id)
        )

        def work(conn: Connection) -> int:
            run_id = int(conn.execute(stmt).scalar_one())
            if found:
                conn.execute(reconciliation_mismatches.insert(), [
                    {
                        "run_id": run_id,
                        "kind": m.kind.value,
                        "org_id": m.org_id,
                        "stripe_customer_id": m.stripe_customer_id,
                        "our_invoice_id": m.our_invoice_id,
                        "stripe_invoice_ids": " ".join(m.stripe_invoice_ids)[:500] or None,
                        "billed_minutes": m.billed_minutes,
                        "sent_minutes": m.sent_minutes,
                        "stripe_minutes": m.stripe_minutes,
                        "our_cents": m.our_cents,
                        "stripe_cents": m.stripe_cents,
                        "detail": m.detail[:500],
                    }
                    for m in found
                ])
            return run_id

        return self._run(work, write=True)

    def last_reconciliation(self) -> ReconciliationRun | None:
        r = reconciliation_runs.c
        query = select(reconciliation_runs).order_by(r.ran_at.desc(), r.id.desc()).limit(1)
        row = self._run(lambda c: c.execute(query).first())
        return None if row is None else _run_of(row)

    def recent_runs(self, *, limit: int) -> list[ReconciliationRun]:
        r = reconciliation_runs.c
        query = select(reconciliation_runs).order_by(r.ran_at.desc(), r.id.desc()).limit(limit)
        return [_run_of(row) for row in self._run(lambda c: c.execute(query).all())]

    def get_run(self, run_id: int) -> ReconciliationRun | None:
        query = select(reconciliation_runs).where(reconciliation_runs.c.id == run_id)
        row = self._run(lambda c: c.execute(query).first())
        return None if row is None else _run_of(row)

    def has_run(self, period_key: str, *, trigger: str) -> bool:
        r = reconciliation_runs.c
        query = select(r.id).where(r.period == period_key, r.trigger == trigger).limit(1)
        return self._run(lambda c: c.execute(query).first()) is not None

    def kinds_by_run(self, run_ids: Sequence[int]) -> dict[int, dict[str, int]]:
        if not run_ids:
            return {}
        m = reconciliation_mismatches.c
        query = (
            select(m.run_id, m.kind, func.count().label("found"))
            .where(m.run_id.in_(list(run_ids)))
            .group_by(m.run_id, m.kind)
        )
        found: dict[int, dict[str, int]] = {}
        for row in self._run(lambda c: c.execute(query).all()):
            found.setdefault(int(row.run_id), {})[row.kind] = int(row.found)
        return found

    def mismatches_of(self, run_id: int, *, org_id: str | None = None,
                      limit: int = 1000) -> list[Mismatch]:
        m = reconciliation_mismatches.c
        query = select(reconciliation_mismatches).where(m.run_id == run_id)
        if org_id is not None:
            query = query.where(m.org_id == org_id)
        query = query.order_by(m.org_id, m.kind, m.id).limit(limit)
        return [_mismatch_of(row) for row in self._run(lambda c: c.execute(query).all())]
