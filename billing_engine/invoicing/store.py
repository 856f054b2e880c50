"""Invoices, credits and closed periods. Every statement is parameterised.

Closing is batched: each batch of orgs is one transaction that writes the invoices, their lines
and the credit they consume together. `(org_id, period)` is unique, so closing again, or two
replicas closing at once, never writes a second invoice or consumes a credit twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, text

from billing_core.periods import BillingPeriod
from billing_core.sql import utc
from billing_engine.customers.tables import orgs
from billing_engine.db.database import Store
from billing_engine.invoicing.rules import (
    CURRENCY,
    AvailableCredit,
    InvoiceDraft,
    InvoiceLine,
    LineKind,
    StripeInvoice,
)
from billing_engine.invoicing.tables import (
    closed_periods,
    credits,
    invoice_lines,
    invoices,
    stripe_invoices,
)
from billing_engine.usage.tables import daily_usage

# Serialises period closing across replicas (PostgreSQL advisory lock, held per transaction).
CLOSE_LOCK_KEY = 8006005
FINALIZED = "finalized"


@dataclass(frozen=True)
class OrgToInvoice:
    org_id: str
    plan_code: str
    used_minutes: int
    credits: tuple[AvailableCredit, ...]


@dataclass(frozen=True)
class BatchOutcome:
    scanned: int  # orgs looked at in this batch
    created: int  # invoices written by this batch
    last_org_id: str | None  # where the next batch starts


@dataclass(frozen=True)
class StoredInvoice:
    id: int
    org_id: str
    period: str
    period_start: datetime
    period_end: datetime
    status: str
    stripe_invoice_id: str | None
    closed_at: datetime
    draft: InvoiceDraft


@dataclass(frozen=True)
class CreditApplication:
    invoice_id: int
    period: str
    amount_cents: int


@dataclass(frozen=True)
class CreditRecord:
    id: int
    org_id: str
    amount_cents: int
    remaining_cents: int
    reason: str
    granted_by: str
    granted_at: datetime
    idempotency_key: str | None
    applications: tuple[CreditApplication, ...] = ()
    # Its customer balance transaction in Stripe (billing_engine/stripe/credits).
    stripe_status: str = "pending"
    stripe_balance_transaction_id: str | None = None
    stripe_last_error: str | None = None


def _credit(row: Any, applications: tuple[CreditApplication, ...] = ()) -> CreditRecord:
    return CreditRecord(
        id=int(row.id),
        org_id=row.org_id,
        amount_cents=int(row.amount_cents),
        remaining_cents=int(row.remaining_cents),
        reason=row.reason,
        granted_by=row.granted_by,
        granted_at=utc(row.granted_at),
        idempotency_key=row.idempotency_key,
        applications=applications,
        stripe_status=row.stripe_status,
        stripe_balance_transaction_id=row.stripe_balance_transaction_id,
        stripe_last_error=row.stripe_last_error,
    )


_AVAILABLE = select(
    credits.c.id, credits.c.org_id, credits.c.remaining_cents, credits.c.reason,
    credits.c.granted_at,
).where(credits.c.remaining_cents > 0)
_ORDER = (credits.c.granted_at, credits.c.id)
# Built once: the billing card asks this on every read.
_AVAILABLE_OF_ORG = _AVAILABLE.where(credits.c.org_id == bindparam("org_id")).order_by(*_ORDER)


def _available(row: Any) -> AvailableCredit:
    return AvailableCredit(
        credit_id=int(row.id),
        remaining_cents=int(row.remaining_cents),
        reason=row.reason,
        granted_at=utc(row.granted_at),
    )


def available_credits_of(
    conn: Connection, org_ids: list[str], granted_before: datetime | None
) -> dict[str, list[AvailableCredit]]:
    query = _AVAILABLE.where(credits.c.org_id.in_(org_ids))
    if granted_before is not None:
        query = query.where(credits.c.granted_at < granted_before)
    found: dict[str, list[AvailableCredit]] = {}
    for r in conn.execute(query.order_by(*_ORDER)):
        found.setdefault(r.org_id, []).append(_available(r))
    return found


def available_credits_of_org(conn: Connection, org_id: str) -> list[AvailableCredit]:
    """An org's credits with a balance left, oldest first."""
    return [_available(r) for r in conn.execute(_AVAILABLE_OF_ORG, {"org_id": org_id})]


class InvoiceStore(Store):
    # -- closing ----------------------------------------------------------------------------

    def close_batch(
        self,
        period: BillingPeriod,
        *,
        credits_granted_before: datetime,
        after_org_id: str | None,
        limit: int,
        now: datetime,
        build: Callable[[OrgToInvoice], InvoiceDraft],
    ) -> BatchOutcome:
        """Invoice the next `limit` orgs (by id, after `after_org_id`) that existed before the
        period ended. Orgs already invoiced for the period are skipped. `build` is pure; it may
        run again if the transaction is retried."""

        def work(conn: Connection) -> BatchOutcome:
            if self.db.is_postgres:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CLOSE_LOCK_KEY})
            query = select(orgs.c.id, orgs.c.plan).where(orgs.c.created_at < period.end)
            if after_org_id is not None:
                query = query.where(orgs.c.id > after_org_id)
            batch = conn.execute(query.order_by(orgs.c.id).limit(limit)).all()
            if not batch:
                return BatchOutcome(0, 0, after_org_id)
            ids = [r.id for r in batch]
            done = {
                r.org_id
                for r in conn.execute(
                    select(invoices.c.org_id).where(
                        invoices.c.period == period.key, invoices.c.org_id.in_(ids)
                    )
                )
            }
            todo = [r for r in batch if r.id not in done]
            created = 0
            if todo:
                wanted = [r.id for r in todo]
                minutes = self._minutes(conn, wanted, period)
                available = available_credits_of(conn, wanted, credits_granted_before)
                drafts = {
                    r.id: build(
                        OrgToInvoice(
                            org_id=r.id,
                            plan_code=r.plan,
                            used_minutes=minutes.get(r.id, 0),
                            credits=tuple(available.get(r.id, ())),
                        )
                    )
                    for r in todo
                }
                created = self._write(conn, period, drafts, now)
            return BatchOutcome(len(batch), created, batch[-1].id)

        return self._run(work, write=True)

    def _minutes(
        self, conn: Connection, org_ids: list[str], period: BillingPeriod
    ) -> dict[str, int]:
        query = (
            select(daily_usage.c.org_id, func.sum(daily_usage.c.minutes).label("minutes"))
            .where(
                daily_usage.c.org_id.in_(org_ids),
                daily_usage.c.day >= period.first_day,
                daily_usage.c.day < period.end_day,
            )
            .group_by(daily_usage.c.org_id)
        )
        return {r.org_id: int(r.minutes) for r in conn.execute(query)}

    def _write(
        self,
        conn: Connection,
        period: BillingPeriod,
        drafts: dict[str, InvoiceDraft],
        now: datetime,
    ) -> int:
        stmt = (
            self._insert(invoices)
            .on_conflict_do_nothing(index_elements=[invoices.c.org_id, invoices.c.period])
            .returning(invoices.c.id, invoices.c.org_id)
        )
        rows = conn.execute(
            stmt,
            [
                {
                    "org_id": org_id,
                    "period": period.key,
                    "period_start": period.start,
                    "period_end": period.end,
                    "plan": d.plan_code,
                    "currency": CURRENCY,
                    "included_minutes": d.included_minutes,
                    "used_minutes": d.used_minutes,
                    "overage_minutes": d.overage_minutes,
                    "subtotal_cents": d.subtotal_cents,
                    "credits_cents": d.credits_cents,
                    "total_cents": d.total_cents,
                    "status": FINALIZED,
                    "stripe_invoice_id": None,
                    "closed_at": now,
                }
                for org_id, d in sorted(drafts.items())
            ],
        ).all()
        written = {r.org_id: int(r.id) for r in rows}
        lines = [
            {
                "org_id": org_id,
                "invoice_id": invoice_id,
                "position": position,
                "kind": line.kind.value,
                "description": line.description,
                "minutes": line.minutes,
                "unit_amount_cents": line.unit_amount_cents,
                "amount_cents": line.amount_cents,
                "credit_id": line.credit_id,
            }
            for org_id, invoice_id in written.items()
            for position, line in enumerate(drafts[org_id].lines, start=1)
        ]
        if lines:
            conn.execute(invoice_lines.insert(), lines)
        for org_id in written:
            for credit_id, cents in drafts[org_id].credits_applied:
                result = conn.execute(
                    credits.update()
                    .where(credits.c.org_id == org_id, credits.c.id == credit_id,
                           credits.c.remaining_cents >= cents)
                    .values(remaining_cents=credits.c.remaining_cents - cents)
                )
                if result.rowcount != 1:  # consumed meanwhile: roll the whole batch back
                    raise RuntimeError(f"credit {credit_id} no longer covers {cents} cents")
        return len(written)

    def mark_period_closed(self, period: BillingPeriod, *, now: datetime) -> int:
        """Record that every invoice of the period is written; returns how many it holds."""

        def work(conn: Connection) -> int:
            count = int(
                conn.execute(
                    select(func.count()).where(invoices.c.period == period.key)
                ).scalar_one()
            )
            stmt = self._insert(closed_periods).values(
                period=period.key, closed_at=now, invoices=count
            )
            conn.execute(stmt.on_conflict_do_nothing(index_elements=[closed_periods.c.period]))
            return count

        return self._run(work, write=True)

    def is_period_closed(self, period_key: str) -> bool:
        query = select(closed_periods.c.period).where(closed_periods.c.period == period_key)
        return self._run(lambda c: c.execute(query).first()) is not None

    # -- invoice reads ----------------------------------------------------------------------

    def invoices_for_org(
        self, org_id: str, *, period_key: str | None = None, limit: int = 24
    ) -> list[StoredInvoice]:
        """Newest period first, each with its lines (two queries)."""
        query = select(invoices).where(invoices.c.org_id == org_id)
        if period_key is not None:
            query = query.where(invoices.c.period == period_key)
        query = query.order_by(invoices.c.period.desc()).limit(limit)

        def work(conn: Connection) -> list[StoredInvoice]:
            heads = conn.execute(query).all()
            if not heads:
                return []
            by_invoice: dict[int, list[InvoiceLine]] = {}
            rows = conn.execute(
                select(invoice_lines)
                .where(invoice_lines.c.org_id == org_id,
                       invoice_lines.c.invoice_id.in_([h.id for h in heads]))
                .order_by(invoice_lines.c.invoice_id, invoice_lines.c.position)
            )
            for r in rows:
                by_invoice.setdefault(int(r.invoice_id), []).append(
                    InvoiceLine(
                        kind=LineKind(r.kind),
                        description=r.description,
                        unit_amount_cents=int(r.unit_amount_cents),
                        amount_cents=int(r.amount_cents),
                        minutes=None if r.minutes is None else int(r.minutes),
                        credit_id=None if r.credit_id is None else int(r.credit_id),
                    )
                )
            return [
                StoredInvoice(
                    id=int(h.id),
                    org_id=h.org_id,
                    period=h.period,
                    period_start=utc(h.period_start),
                    period_end=utc(h.period_end),
                    status=h.status,
                    stripe_invoice_id=h.stripe_invoice_id,
                    closed_at=utc(h.closed_at),
                    draft=InvoiceDraft(
                        plan_code=h.plan,
                        included_minutes=int(h.included_minutes),
                        used_minutes=int(h.used_minutes),
                        overage_minutes=int(h.overage_minutes),
                        lines=tuple(by_invoice.get(int(h.id), ())),
                    ),
                )
                for h in heads
            ]

        return self._run(work)

    def record_stripe_invoice(
        self, *, org_id: str, period_key: str, stripe_invoice_id: str, status: str | None = None
    ) -> bool:
        """Attach Stripe's invoice id (and optionally a new status) to our invoice; False when we
        have no invoice for that org and period."""
        return self._run(
            lambda c: link_stripe_invoice(
                c, org_id=org_id, period_key=period_key, stripe_invoice_id=stripe_invoice_id,
                status=status,
            ),
            write=True,
        )

    def stripe_invoices_of(self, org_id: str, *, limit: int) -> list[StripeInvoice]:
        """Stripe's invoices for this org, newest event first."""
        stmt = (
            select(stripe_invoices)
            .where(stripe_invoices.c.org_id == org_id)
            .order_by(stripe_invoices.c.event_created.desc(), stripe_invoices.c.stripe_invoice_id)
            .limit(limit)
        )
        return self._run(lambda c: [_stripe_invoice(r) for r in c.execute(stmt)])

    # -- credits ----------------------------------------------------------------------------

    def available_credits(self, org_id: str) -> list[AvailableCredit]:
        return self._run(lambda c: available_credits_of(c, [org_id], None)).get(org_id, [])

    def grant_credit(
        self,
        *,
        org_id: str,
        amount_cents: int,
        reason: str,
        granted_by: str,
        now: datetime,
        idempotency_key: str | None,
    ) -> tuple[CreditRecord, bool]:
        """Store a credit; with an idempotency key already used for this org, return the stored
        credit instead (created=False) and write nothing."""

        def work(conn: Connection) -> tuple[CreditRecord, bool]:
            values = {
                "org_id": org_id,
                "amount_cents": amount_cents,
                "remaining_cents": amount_cents,
                "reason": reason,
                "granted_by": granted_by,
                "granted_at": now,
                "idempotency_key": idempotency_key,
            }
            stmt = self._insert(credits).values(**values)
            if idempotency_key is not None:
                stmt = stmt.on_conflict_do_nothing(
                    index_elements=[credits.c.org_id, credits.c.idempotency_key]
                )
            row = conn.execute(stmt.returning(credits.c.id)).first()
            if row is not None:
                stored = conn.execute(
                    select(credits).where(credits.c.org_id == org_id, credits.c.id == row.id)
                ).one()
                return _credit(stored), True
            existing = conn.execute(
                select(credits).where(
                    credits.c.org_id == org_id, credits.c.idempotency_key == idempotency_key
                )
            ).one()
            return _credit(existing), False

        return self._run(work, write=True)

    def credit(self, org_id: str, credit_id: int) -> CreditRecord | None:
        query = select(credits).where(credits.c.org_id == org_id, credits.c.id == credit_id)
        row = self._run(lambda c: c.execute(query).first())
        return None if row is None else _credit(row)

    def credits_for_org(self, org_id: str) -> list[CreditRecord]:
        """Newest first, each with the invoices that consumed it."""

        def work(conn: Connection) -> list[CreditRecord]:
            rows = conn.execute(
                select(credits)
                .where(credits.c.org_id == org_id)
                .order_by(credits.c.granted_at.desc(), credits.c.id.desc())
            ).all()
            if not rows:
                return []
            applied: dict[int, list[CreditApplication]] = {}
            uses = conn.execute(
                select(
                    invoice_lines.c.credit_id,
                    invoice_lines.c.invoice_id,
                    invoice_lines.c.amount_cents,
                    invoices.c.period,
                )
                .join(invoices, (invoices.c.org_id == invoice_lines.c.org_id)
                      & (invoices.c.id == invoice_lines.c.invoice_id))
                .where(invoice_lines.c.org_id == org_id,
                       invoice_lines.c.credit_id.in_([r.id for r in rows]))
                .order_by(invoices.c.period)
            )
            for u in uses:
                applied.setdefault(int(u.credit_id), []).append(
                    CreditApplication(
                        invoice_id=int(u.invoice_id),
                        period=u.period,
                        amount_cents=-int(u.amount_cents),
                    )
                )
            return [_credit(r, tuple(applied.get(int(r.id), ()))) for r in rows]

        return self._run(work)


# -- Stripe's invoices (written inside the Stripe webhook transaction) -------------------------


def link_stripe_invoice(
    conn: Connection,
    *,
    org_id: str,
    period_key: str,
    stripe_invoice_id: str,
    status: str | None = None,
) -> bool:
    """Attach Stripe's invoice id (and optionally a new status) to our invoice of that period;
    False when we have none (yet: the period may not be closed)."""
    values: dict[str, Any] = {"stripe_invoice_id": stripe_invoice_id}
    if status is not None:
        values["status"] = status
    stmt = (
        invoices.update()
        .where(invoices.c.org_id == org_id, invoices.c.period == period_key)
        .values(**values)
    )
    return bool(conn.execute(stmt).rowcount)


def save_stripe_invoice(conn: Connection, invoice: StripeInvoice, *, now: datetime) -> bool:
    """Store Stripe's invoice as this event describes it, unless a newer event already did;
    True when stored."""
    values = {
        "org_id": invoice.org_id,
        "customer_id": invoice.customer_id,
        "number": invoice.number,
        "status": invoice.status,
        "currency": invoice.currency,
        "amount_due_cents": invoice.amount_due_cents,
        "amount_paid_cents": invoice.amount_paid_cents,
        "total_cents": invoice.total_cents,
        "hosted_invoice_url": invoice.hosted_invoice_url,
        "period": invoice.period,
        "event_created": invoice.event_created,
        "updated_at": now,
    }
    key = (stripe_invoices.c.org_id == invoice.org_id) & (
        stripe_invoices.c.stripe_invoice_id == invoice.stripe_invoice_id
    )
    found = conn.execute(select(stripe_invoices.c.event_created).where(key)).first()
    if found is None:
        conn.execute(
            stripe_invoices.insert().values(stripe_invoice_id=invoice.stripe_invoice_id, **values)
        )
        return True
    if utc(found.event_created) > invoice.event_created:
        return False
    conn.execute(stripe_invoices.update().where(key).values(**values))
    return True


def _stripe_invoice(row: Any) -> StripeInvoice:
    return StripeInvoice(
        stripe_invoice_id=row.stripe_invoice_id,
        org_id=row.org_id,
        customer_id=row.customer_id,
        number=row.number,
        status=row.status,
        currency=row.currency,
        amount_due_cents=row.amount_due_cents,
        amount_paid_cents=row.amount_paid_cents,
        total_cents=row.total_cents,
        hosted_invoice_url=row.hosted_invoice_url,
        period=row.period,
        event_created=utc(row.event_created),
    )
