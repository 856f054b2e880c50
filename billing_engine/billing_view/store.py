"""Everything the billing card shows, read in one transaction (one pool checkout, three
statements), from the tables of the concepts it draws on."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, func, select

from billing_core.periods import BillingPeriod
from billing_engine.customers.store import OrgRecord, org_from_row
from billing_engine.customers.tables import orgs
from billing_engine.db.database import Store
from billing_engine.invoicing.rules import AvailableCredit
from billing_engine.invoicing.store import available_credits_of_org
from billing_engine.subscriptions.rules import SubscriptionState
from billing_engine.subscriptions.store import subscriptions_of_org
from billing_engine.usage.tables import daily_usage


@dataclass(frozen=True)
class CardInputs:
    org: OrgRecord
    used_minutes: int
    subscriptions: list[SubscriptionState]
    credits: list[AvailableCredit]


# The org and its minutes in the period, in one statement built once (the card is read a lot).
_USED = (
    select(func.coalesce(func.sum(daily_usage.c.minutes), 0))
    .where(
        daily_usage.c.org_id == orgs.c.id,
        daily_usage.c.day >= bindparam("first_day"),
        daily_usage.c.day < bindparam("end_day"),
    )
    .scalar_subquery()
    .label("used_minutes")
)
_ORG_WITH_USAGE = select(orgs, _USED).where(orgs.c.id == bindparam("org_id"))


class BillingCardStore(Store):
    def card_inputs(self, org_id: str, period: BillingPeriod) -> CardInputs | None:
        """None when there is no such org."""
        params = {"org_id": org_id, "first_day": period.first_day, "end_day": period.end_day}

        def work(conn: Connection) -> CardInputs | None:
            row = conn.execute(_ORG_WITH_USAGE, params).first()
            if row is None:
                return None
            return CardInputs(
                org=org_from_row(row),
                used_minutes=int(row.used_minutes),
                subscriptions=subscriptions_of_org(conn, org_id),
                credits=available_credits_of_org(conn, org_id),
            )

        return self._run(work)
