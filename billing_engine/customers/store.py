"""Orgs: create, update, look up and search. Every statement is parameterised."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, or_, select
from sqlalchemy.sql.elements import ColumnElement

from billing_core.sql import utc
from billing_engine.customers.tables import orgs
from billing_engine.db.database import Store
from billing_engine.invoicing.tables import invoices, stripe_invoices
from billing_engine.subscriptions.tables import subscriptions


@dataclass(frozen=True)
class OrgRecord:
    id: str
    name: str
    billing_email: str
    plan: str
    stripe_customer_id: str | None
    created_at: datetime


def org_from_row(row: Any) -> OrgRecord:
    """An OrgRecord from any row holding the orgs columns (other stores join them too)."""
    return OrgRecord(
        id=row.id,
        name=row.name,
        billing_email=row.billing_email,
        plan=row.plan,
        stripe_customer_id=row.stripe_customer_id,
        created_at=utc(row.created_at),
    )


# What a customer quotes from Stripe: ids by their prefix, an invoice number as Stripe formats
# it (the customer's invoice prefix, a dash, a sequence: "ABCD1234-0001").
CUSTOMER_ID = re.compile(r"^cus_[A-Za-z0-9]+$")
SUBSCRIPTION_ID = re.compile(r"^sub_[A-Za-z0-9]+$")
INVOICE_ID = re.compile(r"^in_[A-Za-z0-9]+$")
INVOICE_NUMBER = re.compile(r"^[A-Za-z0-9]{3,12}-[0-9]{4,}$")


def stripe_reference(query: str) -> ColumnElement[bool] | None:
    """The condition finding the org a Stripe id or invoice number belongs to, if `query` is
    one: the customer on the org, a subscription we hold for it, or an invoice: ours linked to
    Stripe's, or Stripe's as its invoice events described it (id and number)."""
    quoted = query.strip()
    s = stripe_invoices.c
    if CUSTOMER_ID.match(quoted):
        return orgs.c.stripe_customer_id == quoted
    if SUBSCRIPTION_ID.match(quoted):
        return orgs.c.id.in_(select(subscriptions.c.org_id).where(subscriptions.c.id == quoted))
    if INVOICE_ID.match(quoted):
        return or_(
            orgs.c.id.in_(select(invoices.c.org_id).where(invoices.c.stripe_invoice_id == quoted)),
            orgs.c.id.in_(select(s.org_id).where(s.stripe_invoice_id == quoted)))
    if INVOICE_NUMBER.match(quoted):
        return orgs.c.id.in_(select(s.org_id).where(s.number == quoted.upper()))
    return None


def like_prefix(text: str) -> str:
    """A LIKE pattern matching `text` as a literal prefix, case-folded."""
    needle = text.strip().lower()
    return needle.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


class CustomerStore(Store):
    def upsert_org(
        self, *, org_id: str, name: str, billing_email: str, plan: str, now: datetime
    ) -> tuple[OrgRecord, bool]:
        def work(conn: Connection) -> tuple[OrgRecord, bool]:
            existing = conn.execute(select(orgs.c.id).where(orgs.c.id == org_id)).first()
            if existing is None:
                conn.execute(
                    orgs.insert().values(
                        id=org_id,
                        name=name,
                        billing_email=billing_email,
                        plan=plan,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                conn.execute(
                    orgs.update()
                    .where(orgs.c.id == org_id)
                    .values(name=name, billing_email=billing_email, plan=plan, updated_at=now)
                )
            row = conn.execute(select(orgs).where(orgs.c.id == org_id)).one()
            return org_from_row(row), existing is None

        return self._run(work, write=True)

    def get_org(self, org_id: str) -> OrgRecord | None:
        row = self._run(lambda c: c.execute(select(orgs).where(orgs.c.id == org_id)).first())
        return None if row is None else org_from_row(row)

    def get_orgs(self, org_ids: Iterable[str]) -> dict[str, OrgRecord]:
        wanted = sorted(set(org_ids))
        if not wanted:
            return {}
        query = select(orgs).where(orgs.c.id.in_(wanted))
        return {r.id: org_from_row(r) for r in self._run(lambda c: c.execute(query).all())}

    def orgs_of_customer(self, customer_id: str) -> list[OrgRecord]:
        query = select(orgs).where(orgs.c.stripe_customer_id == customer_id).order_by(orgs.c.id)
        return [org_from_row(r) for r in self._run(lambda c: c.execute(query).all())]

    def existing_org_ids(self, org_ids: Iterable[str]) -> set[str]:
        wanted = list(set(org_ids))
        if not wanted:
            return set()
        rows = self._run(lambda c: c.execute(select(orgs.c.id).where(orgs.c.id.in_(wanted))).all())
        return {r.id for r in rows}

    def search_orgs(self, query: str, *, limit: int, offset: int) -> tuple[list[OrgRecord], int]:
        pattern = like_prefix(query)
        matches: list[ColumnElement[bool]] = [
            func.lower(orgs.c.id).like(pattern, escape="\\"),
            func.lower(orgs.c.name).like(pattern, escape="\\"),
            func.lower(orgs.c.billing_email).like(pattern, escape="\\"),
        ]
        quoted = stripe_reference(query)
        if quoted is not None:
            matches.append(quoted)
        condition = or_(*matches)

        def work(conn: Connection) -> tuple[list[OrgRecord], int]:
            total = conn.execute(select(func.count()).select_from(orgs).where(condition)).scalar()
            rows = conn.execute(
                select(orgs)
                .where(condition)
                .order_by(orgs.c.name, orgs.c.id)
                .limit(limit)
                .offset(offset)
            ).all()
            return [org_from_row(r) for r in rows], int(total or 0)

        return self._run(work)


# -- inside another store's transaction (the Stripe webhook effects) -------------------------


def org_by_id(conn: Connection, org_id: str) -> OrgRecord | None:
    row = conn.execute(select(orgs).where(orgs.c.id == org_id)).first()
    return None if row is None else org_from_row(row)


def org_for_customer(conn: Connection, customer_id: str) -> OrgRecord | None:
    row = conn.execute(
        select(orgs).where(orgs.c.stripe_customer_id == customer_id).order_by(orgs.c.id)
    ).first()
    return None if row is None else org_from_row(row)


def link_customer(conn: Connection, org_id: str, customer_id: str, *, now: datetime) -> None:
    conn.execute(
        orgs.update()
        .where(orgs.c.id == org_id)
        .values(stripe_customer_id=customer_id, updated_at=now)
    )


def set_org_plan(conn: Connection, org_id: str, plan: str, *, now: datetime) -> None:
    conn.execute(orgs.update().where(orgs.c.id == org_id).values(plan=plan, updated_at=now))
