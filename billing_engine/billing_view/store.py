"""Everything the billing card shows, read in one transaction (one pool checkout, three
statements), from the tables of the concepts it draws on."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, select

from billing_core.periods import BillingPeriod
from billing_engine.customers.store import OrgRecord, org_from_row
from billing_engine.customers.tables import orgs
from billing_engine.db.database import Store
from billing_engine.invoicing.rules import AvailableCredit
from billing_engine.invoicing.store import available_credits_of
from billing_engine.subscriptions.rules import SubscriptionState
from billing_engine.subscriptions.store import subscriptions_of_org
from billing_engine.usage.store import period_minutes_query


@dataclass(frozen=True)
class CardInputs:
    org: OrgRecord
    used_minutes: int
    subscriptions: list[SubscriptionState]
    credits: list[AvailableCredit]


class BillingCardStore(Store):
    def card_inputs(self, org_id: str, period: BillingPeriod) -> CardInputs | None:
        """None when there is no such org."""
        used = period_minutes_query(org_id, period).scalar_subquery().label("used_minutes")

        def work(conn: Connection) -> CardInputs | None:
            row = conn.execute(select(orgs, used).where(orgs.c.id == org_id)).first()
            if row is None:
                return None
            return CardInputs(
                org=org_from_row(row),
                used_minutes=int(row.used_minutes),
                subscriptions=subscriptions_of_org(conn, org_id),
                credits=available_credits_of(conn, [org_id], None).get(org_id, []),
            )

        return self._run(work)
