"""Stripe subscriptions as last applied, per org. Every statement is parameterised."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select

from billing_core.sql import utc, utc_or_none
from billing_engine.customers.store import OrgRecord, org_from_row
from billing_engine.customers.tables import orgs
from billing_engine.db.database import Store
from billing_engine.subscriptions.rules import SubscriptionState
from billing_engine.subscriptions.tables import subscriptions


def subscription_from_row(row: Any) -> SubscriptionState:
    return SubscriptionState(
        subscription_id=row.id,
        customer_id=row.customer_id,
        status=row.status,
        price_ids=tuple(row.price_ids.split()) if row.price_ids else (),
        current_period_start=utc_or_none(row.current_period_start),
        current_period_end=utc_or_none(row.current_period_end),
        cancel_at_period_end=bool(row.cancel_at_period_end),
        event_created=utc(row.event_created_at),
    )



# -- inside the Stripe webhook transaction ---------------------------------------------------


def subscription_by_id(
    conn: Connection, subscription_id: str, *, org_id: str
) -> tuple[SubscriptionState, str] | None:
    """The stored state of the subscription and the event id it came from: the org's row, else
    (the subscription's first event at this org, its customer linked here since) the row
    another org kept, so that an older event delivered after the move still loses to it."""
    row = conn.execute(
        select(subscriptions).where(
            subscriptions.c.org_id == org_id, subscriptions.c.id == subscription_id
        )
    ).first()
    if row is None:
        row = held_at_another_org(conn, subscription_id)
    return None if row is None else (subscription_from_row(row), row.event_id)


def held_at_another_org(conn: Connection, subscription_id: str) -> Any:
    """The row an earlier org kept for this subscription, if any (by its id alone)."""
    return conn.execute(
        select(subscriptions).where(subscriptions.c.id == subscription_id).limit(1)
    ).first()


# Built once: the billing card asks this on every read.
_OF_ORG = select(subscriptions).where(subscriptions.c.org_id == bindparam("org_id"))


def subscriptions_of_org(conn: Connection, org_id: str) -> list[SubscriptionState]:
    return [subscription_from_row(r) for r in conn.execute(_OF_ORG, {"org_id": org_id})]


def save_subscription(
    conn: Connection,
    state: SubscriptionState,
    *,
    org_id: str,
    plan: str | None,
    event_id: str,
    now: datetime,
) -> None:
    """Store the subscription under the org its event resolved to. Rows never change org (the
    org is in the key): a subscription whose customer moved to another org gets a new row
    there, and the old org's row is removed, so that one subscription is one org's."""
    values = {
        "customer_id": state.customer_id,
        "status": state.status[:32],
        "price_ids": " ".join(state.price_ids)[:1000],
        "plan": plan,
        "current_period_start": state.current_period_start,
        "current_period_end": state.current_period_end,
        "cancel_at_period_end": state.cancel_at_period_end,
        "event_created_at": state.event_created,
        "event_id": event_id,
        "updated_at": now,
    }
    updated = conn.execute(
        subscriptions.update()
        .where(subscriptions.c.org_id == org_id, subscriptions.c.id == state.subscription_id)
        .values(**values)
    )
    if updated.rowcount == 0:
        conn.execute(
            subscriptions.insert().values(org_id=org_id, id=state.subscription_id, **values)
        )
        forget_at_other_orgs(conn, state.subscription_id, org_id=org_id)


def forget_at_other_orgs(conn: Connection, subscription_id: str, *, org_id: str) -> None:
    """Remove the row another org kept for this subscription (its customer was linked to
    `org_id` since). Runs only on an org's first row for a subscription."""
    conn.execute(
        subscriptions.delete().where(
            subscriptions.c.id == subscription_id, subscriptions.c.org_id != org_id
        )
    )


class SubscriptionStore(Store):
    def subscriptions_of(self, org_ids: Iterable[str]) -> dict[str, list[SubscriptionState]]:
        wanted = sorted(set(org_ids))
        if not wanted:
            return {}
        query = select(subscriptions).where(subscriptions.c.org_id.in_(wanted))
        found: dict[str, list[SubscriptionState]] = {}
        for row in self._run(lambda c: c.execute(query).all()):
            found.setdefault(row.org_id, []).append(subscription_from_row(row))
        return found

    def orgs_with_subscriptions(
        self, org_ids: Iterable[str]
    ) -> dict[str, tuple[OrgRecord, list[SubscriptionState]]]:
        """Orgs and their subscriptions in one query (entitlements on a cache miss)."""
        wanted = sorted(set(org_ids))
        if not wanted:
            return {}
        sub_cols = [c.label(f"sub_{c.name}") for c in subscriptions.c]
        query = (
            select(orgs, *sub_cols)
            .select_from(orgs.outerjoin(subscriptions, subscriptions.c.org_id == orgs.c.id))
            .where(orgs.c.id.in_(wanted))
        )
        found: dict[str, tuple[OrgRecord, list[SubscriptionState]]] = {}
        for row in self._run(lambda c: c.execute(query).all()):
            org_id = row.id
            if org_id not in found:
                found[org_id] = (org_from_row(row), [])
            if row.sub_id is not None:
                sub = {c.name: getattr(row, f"sub_{c.name}") for c in subscriptions.c}
                found[org_id][1].append(subscription_from_row(_Row(sub)))
        return found


class _Row:
    """Attribute access over a dict, so joined columns reuse the row readers."""

    def __init__(self, values: dict[str, Any]) -> None:
        self.__dict__.update(values)
